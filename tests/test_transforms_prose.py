"""Prose compression: fillers and articles go, every code-like or quoted part stays byte-identical."""

from __future__ import annotations

import copy

import pytest
from corpus_builders import FILLER_PROMPT, claude_code_request, opencode_request

from tui.core.transforms.pipeline import run_transforms
from tui.core.transforms.prose import compress_prose, prose_sample


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("Please fix the bug in a parser.", "fix bug in parser."),
        ("Could you please look at an issue?", "look at issue?"),
        ("I would like you to just refactor the code.", "refactor code."),
        ("It is basically   really slow.", "It is slow."),
        ("Kindly run it.  Then stop.", "run it. Then stop."),
        ("The", "The"),
        ("trailing spaces   \nnext", "trailing spaces\nnext"),
        ("one\n\n\n\n\ntwo", "one\n\ntwo"),
    ],
)
def test_fillers_articles_and_spaces_are_removed(before: str, after: str) -> None:
    assert compress_prose(before) == after


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Use plan a or b.", "plan a or b"),
        ("The vitamin A is missing.", "vitamin A is missing"),
        ("See part a of it.", "part a of"),
        ("Try a-b testing.", "a-b testing"),
        ("Keep the_value.", "the_value"),
        ("Run a.out and the.txt now.", "a.out and the.txt"),
        ("Fix (the) paren.", "(the)"),
        ("A theory and a thesis.", "theory and thesis"),
        ("Tell me why can you not run.", "why can you not"),
    ],
)
def test_words_that_carry_meaning_stay(text: str, kept: str) -> None:
    assert kept in compress_prose(text)


PROTECTED = [
    "```python\nthe = a + an  # the comment\nprint(the)\n```",
    "~~~\nplease just the a\n~~~",
    "`git commit -a -m 'the fix'`",
    "``the `a` code``",
    '{"the": "a", "an": [1, 2, "just the"]}',
    '[\n  {"a": "the"},\n  "please"\n]',
    "https://example.com/the/a/an?please=just#the",
    "www.the-a.example.org/just/the",
    "/home/a/the.txt",
    "C:\\Users\\a\\the file.txt",
    "~/a/the/notes.md",
    "./a/the",
    '"the a an please"',
    "'just the a'",
    "“the quoted one”",
    "<system-reminder>\nPlease read the CLAUDE.md, the a an.\n</system-reminder>",
    "<command-name>/the-a</command-name>",
    "<b>the a</b>",
    "$ ls -la the a",
    "git log --oneline the a",
    "cd /the/a && make the target",
    "    indented the a code line",
    "x = the + a;",
    "if a == the: pass",
    "> quoted the a reply",
    "漢字 the 字 😀 a ☕",
]


@pytest.mark.parametrize("part", PROTECTED, ids=range(len(PROTECTED)))
def test_protected_parts_come_out_byte_identical(part: str) -> None:
    text = f"Please look at the thing:\n{part}\nand just fix the rest, please."
    out = compress_prose(text)
    if "漢字" in part:
        assert "漢字" in out and "😀" in out and "☕" in out
        return
    assert part in out
    assert out.startswith("look at thing:\n")


def test_unclosed_reminder_guards_the_rest_of_the_text() -> None:
    text = "Please fix the bug.\n<system-reminder>\nthe a an please just the end"
    out = compress_prose(text)
    assert out == "fix bug.\n<system-reminder>\nthe a an please just the end"


def test_unclosed_fence_and_backtick_guard_the_rest() -> None:
    assert compress_prose("Please see\n```\nthe a\nthe b") == "see\n```\nthe a\nthe b"
    assert compress_prose("Please see `the a the b") == "see `the a the b"


def test_combining_marks_and_emoji_sequences_are_untouched() -> None:
    text = "Please fix the café (cafe\u0301) and the 👩\u200d💻 a test"
    out = compress_prose(text)
    assert "cafe\u0301" in out and "👩\u200d💻" in out
    assert out == "fix café (cafe\u0301) and the 👩\u200d💻 test", "an article before a symbol stays"


def test_megabyte_line_of_prose_and_code_is_handled() -> None:
    line = ("the quick fox, please just `the a` see /a/the " * 23_000)[:1_000_000]
    out = compress_prose(line)
    assert out.count("`the a`") == line.count("`the a`")
    assert out.count("/a/the") == line.count("/a/the")
    assert len(out) < len(line)


def test_sample_shows_before_and_after() -> None:
    before, after = prose_sample()
    assert before != after and len(after) < len(before)
    assert "<system-reminder>Please keep the reminder as it is.</system-reminder>" in after
    assert prose_sample(FILLER_PROMPT)[0] == FILLER_PROMPT


def test_only_user_text_is_compressed_in_anthropic_bodies() -> None:
    body = claude_code_request(8, ("build", "git_diff"))
    body["messages"][1]["content"][1]["text"] = "The assistant says: please just run the a build."
    snapshot = copy.deepcopy(body)
    new_body, reports = run_transforms(body, "anthropic", ["compress_prose"])
    assert body == snapshot
    assert reports[0].changed
    assert new_body["system"] is body["system"] and new_body["tools"] is body["tools"]
    first_user = new_body["messages"][0]["content"]
    assert first_user[0] == body["messages"][0]["content"][0], "the reminder block stays"
    assert len(first_user[1]["text"]) < len(body["messages"][0]["content"][1]["text"])
    for old, new in zip(body["messages"][1:-1], new_body["messages"][1:-1], strict=True):
        assert new is old, "assistant turns and tool results are never compressed"
    assert new_body["messages"][-1]["content"][0] == body["messages"][-1]["content"][0]
    assert new_body["messages"][-1]["content"][1] == {
        "type": "text",
        "text": "continue with fix.",
        "cache_control": {"type": "ephemeral"},
    }


def test_only_user_text_is_compressed_in_openai_bodies() -> None:
    body = opencode_request(9, ("ls",))
    new_body, _ = run_transforms(body, "openai", ["compress_prose"])
    roles = [m["role"] for m in body["messages"]]
    for i, role in enumerate(roles):
        if role != "user":
            assert new_body["messages"][i] is body["messages"][i]
    assert new_body["messages"][-1]["content"] == [{"type": "text", "text": "fix warnings."}]
    assert (
        "```bash\ncmake --build build -j8 && ctest --test-dir build\n```"
        in new_body["messages"][1]["content"]
    )
    assert "/home/a/the.txt" in new_body["messages"][1]["content"]
    assert "https://example.com/the/docs." in new_body["messages"][1]["content"]
    assert '"the a an"' in new_body["messages"][1]["content"]


PATHOLOGICAL = {
    "no spaces": "x" * 200_000,
    "brackets": "<{[" * 70_000,
    "scheme-like": "x-" * 100_000,
    "blank runs": " \t" * 100_000 + "\nend",
    "article then spaces": "the" + " " * 200_000 + "!",
    "many tag names": "".join(f"<t{i} " for i in range(30_000)),
    "unbalanced json lines": "[\n" * 100_000,
    "colons": "a:" * 100_000,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_inputs_finish_in_linear_time(name: str) -> None:
    text = PATHOLOGICAL[name]
    out = compress_prose(text)
    assert len(out) <= len(text)
    if name in ("no spaces", "brackets", "scheme-like", "many tag names", "colons"):
        assert out == text
