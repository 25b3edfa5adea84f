"""Builders of realistic agent requests (Claude Code / opencode shapes) for transform tests and benches."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ESC = "\x1b"
RED, YELLOW, GREEN, BOLD, RESET = f"{ESC}[31m", f"{ESC}[33m", f"{ESC}[32m", f"{ESC}[1m", f"{ESC}[0m"


@dataclass(frozen=True)
class CorpusRequest:
    """One request of the corpus: a name for test ids, its dialect and its parsed body."""

    name: str
    dialect: str
    body: dict[str, Any]


def billing_line(
    version: str = "2.1.197", suffix: str = "abc", cch: str = "1a2b3", subagent: bool = False
) -> str:
    """Claude Code's first system block, whose hash suffix and cch value vary between requests."""
    extra = " cc_is_subagent=true;" if subagent else ""
    return f"x-anthropic-billing-header: cc_version={version}.{suffix}; cc_entrypoint=cli; cch={cch};{extra}"


def claude_system_prompt(rng: random.Random, date: str = "2026-11-21") -> str:
    """A main system prompt in the style of Claude Code: guidance sections, environment, git snapshot."""
    sections = [
        "You are an interactive CLI tool that helps users with software engineering tasks. Use the "
        "instructions below and the tools available to you to assist the user.",
        "# Tone and style\nYou should be concise, direct, and to the point. Only use emojis if the user "
        "explicitly requests it. Your output will be displayed on a command line interface.",
        "# Doing tasks\nThe user will primarily request you perform software engineering tasks. This "
        "includes solving bugs, adding new functionality, refactoring code, explaining code, and more.\n"
        + "\n".join(f"- Step {i}: read the relevant files before changing anything." for i in range(1, 30)),
        "# Tool usage policy\n"
        + " ".join(
            "When doing file search, prefer to use the Agent tool in order to reduce context usage."
            for _ in range(40)
        ),
        f"<env>\nWorking directory: /home/dev/project\nIs directory a git repo: Yes\nPlatform: linux\n"
        f"OS Version: Linux 6.8.0-45-generic\nToday's date is {date}.\n</env>",
        "gitStatus: This is the git status at the start of the conversation.\nCurrent branch: main\n\n"
        "Status:\n" + git_status(rng) + "\n\nRecent commits:\n" + git_log(rng, 5, oneline=True),
    ]
    return "\n\n".join(sections * 3)


def claude_tools(rng: random.Random) -> list[dict[str, Any]]:
    """Built-in and MCP tool definitions with multi-paragraph descriptions and JSON schemas."""
    tools: list[dict[str, Any]] = []
    for name in (
        "Bash",
        "Read",
        "Edit",
        "Write",
        "Glob",
        "Grep",
        "Agent",
        "TodoWrite",
        "WebFetch",
        "NotebookEdit",
    ):
        paragraphs = [f"{name}: performs the {name.lower()} operation on the user's workspace."]
        paragraphs += [
            f"Usage note {i}: " + " ".join(rng.choice(_WORDS) for _ in range(60))
            for i in range(rng.randint(2, 8))
        ]
        tools.append(
            {
                "name": name,
                "description": "\n\n".join(paragraphs),
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "command": {"type": "string", "description": "The command to run.\n\nBe careful."},
                        "timeout": {"type": "number", "description": "Optional timeout in ms (max 600000)"},
                    },
                    "required": ["command"],
                    "additionalProperties": False,
                    "$schema": "http://json-schema.org/draft-07/schema#",
                },
            }
        )
    for name in ("read_file", "list_directory", "search_files"):
        tools.append(
            {
                "name": f"mcp__filesystem__{name}",
                "description": f"{name.replace('_', ' ').capitalize()} within allowed directories.\n\n"
                + " ".join(rng.choice(_WORDS) for _ in range(80)),
                "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
            }
        )
    return tools


_WORDS = (
    "the a an file path command output tool user model request token cache server prompt system use when "
    "always never should must directory parameter result error warning build test commit branch"
).split()


def cmake_gcc_log(rng: random.Random, n_files: int = 40, ansi: bool = True) -> str:
    """A cmake/gcc build log with colors, progress lines and the same warning repeated per file."""
    c = (lambda code, s: f"{code}{s}{RESET}") if ansi else (lambda code, s: s)
    lines = [
        "-- The C compiler identification is GNU 12.2.0",
        "-- Configuring done (0.4s)",
        "-- Generating done",
    ]
    for i in range(n_files):
        pct = int(100 * (i + 1) / n_files)
        lines.append(
            f"[{pct:3d}%] {c(GREEN, 'Building CXX object')} src/CMakeFiles/core.dir/module_{i}.cpp.o"
        )
        for _ in range(rng.randint(0, 3)):
            lines.append(
                f"{c(BOLD, '/home/dev/project/include/common.h:42:7:')} {c(YELLOW, 'warning:')} "
                f"unused variable 'tmp' [-Wunused-variable]   "
            )
            lines.append("   42 |   int tmp = 0;")
            lines.append("      |       ^~~")
        if rng.random() < 0.3:
            lines.extend(["In file included from /home/dev/project/src/module.cpp:3:"] * rng.randint(3, 6))
    lines.append(f"[100%] {c(GREEN, 'Linking CXX executable')} bin/app")
    lines.append(f"{c(RED, 'make[2]: *** [src/CMakeFiles/core.dir/build.make:76] Error 1')}")
    return "\n".join(lines)


def pytest_output(rng: random.Random, n_tests: int = 600, ansi: bool = True) -> str:
    """Verbose pytest output: one line per test, progress percentages, a failure summary."""
    lines = [
        "============================= test session starts ==============================",
        "platform linux -- Python 3.11.7, pytest-8.3.3, pluggy-1.5.0",
        "rootdir: /home/dev/project",
        f"collected {n_tests} items",
        "",
    ]
    for i in range(n_tests):
        status = "PASSED" if rng.random() > 0.02 else "FAILED"
        colored = (
            (f"{GREEN}{status}{RESET}" if status == "PASSED" else f"{RED}{status}{RESET}") if ansi else status
        )
        lines.append(
            f"tests/test_module_{i // 50}.py::test_case_{i} {colored}{'':10s}[{100 * i // n_tests:3d}%]"
        )
    lines += [
        "",
        "=" * 30 + " short test summary info " + "=" * 30,
        "FAILED tests/test_module_3.py::test_case_170",
        f"{RED}=== 1 failed, {n_tests - 1} passed in 12.34s ==={RESET}" if ansi else "=== 1 failed ===",
    ]
    lines += ["." * 80] * 6
    return "\n".join(lines)


def git_log(rng: random.Random, n: int = 50, oneline: bool = False) -> str:
    """git log output, full or --oneline."""
    out: list[str] = []
    for i in range(n):
        sha = "".join(rng.choice("0123456789abcdef") for _ in range(40))
        subject = f"Fix {rng.choice(_WORDS)} handling in {rng.choice(_WORDS)} module (#{1000 + i})"
        if oneline:
            out.append(f"{sha[:7]} {subject}")
        else:
            out += [
                f"commit {sha}",
                "Author: Dev Person <dev@example.com>",
                f"Date:   Sat Nov {1 + i % 28} 10:{i % 60:02d}:00 2026 +0000",
                "",
                f"    {subject}",
                "",
            ]
    return "\n".join(out)


def git_diff(rng: random.Random, n_hunks: int = 12) -> str:
    """A unified git diff with several hunks."""
    out = [
        "diff --git a/src/the_parser.py b/src/the_parser.py",
        "index 3b18e51..a1f9c02 100644",
        "--- a/src/the_parser.py",
        "+++ b/src/the_parser.py",
    ]
    for h in range(n_hunks):
        out.append(f"@@ -{h * 30 + 1},7 +{h * 30 + 1},8 @@ def parse_{h}(text):")
        out += [f"     value = tokens[{k}]  " for k in range(3)]
        out += [f"-    return the_value_{h}", f"+    return a_value_{h}", "+    # the fix"]
        out += ["     ", "     "]
    return "\n".join(out)


def git_status(rng: random.Random) -> str:
    """git status --short output."""
    return "\n".join(f" M src/module_{rng.randint(0, 99)}.py" for _ in range(8)) + "\n?? notes.txt"


def ls_la(rng: random.Random, n: int = 80) -> str:
    """ls -la output of a directory."""
    out = [
        f"total {n * 8}",
        "drwxr-xr-x  12 dev dev  4096 Nov 21 08:00 .",
        "drwxr-xr-x   5 dev dev  4096 Nov 20 12:00 ..",
    ]
    for i in range(n):
        size = rng.randint(100, 99999)
        out.append(
            f"-rw-r--r--   1 dev dev {size:6d} Nov {1 + i % 20:2d} 1{i % 10}:{i % 60:02d} file_{i:03d}.py"
        )
    return "\n".join(out)


def find_output(rng: random.Random, n: int = 300) -> str:
    """find . -name '*.py' output."""
    dirs = ["src", "src/core", "src/ui", "tests", "tests/data", "scripts"]
    return "\n".join(f"./{rng.choice(dirs)}/module_{i}.py" for i in range(n))


def read_output(rng: random.Random, n: int = 300) -> str:
    """Read tool output: numbered file lines with trailing spaces the agent must see as they are."""
    return "\n".join(f"{i + 1:6d}\t    value_{i} = compute({i})  " for i in range(n))


FILLER_PROMPT = (
    "Could you please take a look at the build? I would basically like you to just fix the warnings in the "
    "common header, and please also make sure that the tests still pass. It would be really nice if you "
    "could simply run the full test suite afterwards.\n\n"
    "Here is the command I use:\n```bash\ncmake --build build -j8 && ctest --test-dir build\n```\n"
    "The config is in /home/a/the.txt and the docs are at https://example.com/the/docs. "
    'The error message says "the a an" which is odd. Kindly keep `the_value` as it is.\n'
)


def long_user_prompt(rng: random.Random, paragraphs: int = 6) -> str:
    """A long prompt full of filler words, with code, paths and URLs mixed in."""
    parts = [FILLER_PROMPT]
    for _ in range(paragraphs):
        parts.append(
            " ".join(
                rng.choice(["Please", "Just", "Basically,", "I think", "Actually", "The"])
                + " "
                + " ".join(rng.choice(_WORDS) for _ in range(12))
                + "."
                for _ in range(6)
            )
        )
    return "\n\n".join(parts)


def reminder(text: str) -> str:
    """A <system-reminder> block like the ones Claude Code puts in the first user message."""
    return f"<system-reminder>\n{text}\n</system-reminder>"


TOOL_OUTPUTS: dict[str, tuple[str, dict[str, str], Callable[[random.Random], str]]] = {
    "build": ("Bash", {"command": "cmake --build build -j8"}, cmake_gcc_log),
    "pytest": ("Bash", {"command": "pytest -v"}, pytest_output),
    "git_log": ("Bash", {"command": "git log -n 50"}, git_log),
    "git_diff": ("Bash", {"command": "git diff"}, git_diff),
    "ls": ("Bash", {"command": "ls -la"}, ls_la),
    "find": ("Bash", {"command": "find . -name '*.py'"}, find_output),
    "read": ("Read", {"file_path": "/home/dev/project/src/the_parser.py"}, read_output),
}


def claude_code_request(
    seed: int = 0,
    outputs: tuple[str, ...] = ("build", "pytest", "git_log", "git_diff", "ls", "find", "read"),
    billing_suffix: str = "abc",
    cch: str = "1a2b3",
    list_results: bool = False,
) -> dict[str, Any]:
    """A Claude Code /v1/messages body mid-session: 3 system blocks, tools, reminders, tool turns."""
    rng = random.Random(seed)
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": reminder("As you answer, use this context:\n# claudeMd\nUse the tests."),
                },
                {"type": "text", "text": long_user_prompt(rng)},
            ],
        }
    ]
    for i, key in enumerate(outputs):
        tool, tool_input, build = TOOL_OUTPUTS[key]
        use_id = f"toolu_{seed:02d}{i:02d}{rng.randint(10**8, 10**9)}"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I should the run a command.", "signature": "c2ln"},
                    {"type": "text", "text": f"Running {key} now."},
                    {"type": "tool_use", "id": use_id, "name": tool, "input": tool_input},
                ],
            }
        )
        output = build(rng)
        content: Any = [{"type": "text", "text": output}] if list_results else output
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use_id, "content": content}]}
        )
    messages[-1]["content"].append(
        {"type": "text", "text": "Please just continue with the fix.", "cache_control": {"type": "ephemeral"}}
    )
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": billing_line(suffix=billing_suffix, cch=cch)},
            {
                "type": "text",
                "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "text", "text": claude_system_prompt(rng), "cache_control": {"type": "ephemeral"}},
        ],
        "tools": claude_tools(rng),
        "messages": messages,
        "metadata": {
            "user_id": json.dumps({"device_id": "d" * 64, "session_id": "5e0c9a4e-0000-4000-8000-1"})
        },
    }


def opencode_request(
    seed: int = 0, outputs: tuple[str, ...] = ("build", "pytest", "git_log", "ls")
) -> dict[str, Any]:
    """An opencode /v1/chat/completions body: one system message, function tools, tool messages."""
    rng = random.Random(seed)
    tools = [
        {
            "type": "function",
            "function": {
                "name": t["name"].lower(),
                "description": t["description"],
                "parameters": t["input_schema"],
            },
        }
        for t in claude_tools(rng)
    ]
    messages: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": "You are opencode, an interactive CLI agent.\n\n" + claude_system_prompt(rng),
        },
        {"role": "user", "content": long_user_prompt(rng, 3)},
    ]
    for i, key in enumerate(outputs):
        tool, tool_input, build = TOOL_OUTPUTS[key]
        call_id = f"call_{seed}_{i}"
        messages.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": tool.lower(), "arguments": json.dumps(tool_input)},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "content": build(rng)})
    messages.append({"role": "user", "content": [{"type": "text", "text": "Please just fix the warnings."}]})
    return {"model": "local", "stream": True, "tool_choice": "auto", "tools": tools, "messages": messages}


def corpus() -> list[CorpusRequest]:
    """The request corpus the transform tests and bench run over."""
    return [
        CorpusRequest("claude-main", "anthropic", claude_code_request(1)),
        CorpusRequest("claude-list-results", "anthropic", claude_code_request(2, list_results=True)),
        CorpusRequest("claude-build-only", "anthropic", claude_code_request(3, ("build", "build", "pytest"))),
        CorpusRequest(
            "claude-git", "anthropic", claude_code_request(4, ("git_log", "git_diff", "ls", "find"))
        ),
        CorpusRequest("claude-first-turn", "anthropic", claude_code_request(5, ())),
        CorpusRequest("opencode-main", "openai", opencode_request(6)),
        CorpusRequest("opencode-git", "openai", opencode_request(7, ("git_diff", "find", "read"))),
    ]
