"""The console script's entry: `ctxbudget statusline --journal ...` skips the parser and config loading."""

from __future__ import annotations

import sys


def main() -> int:
    """Run the status line fast (Claude Code calls it on every update); everything else goes to tui.cli."""
    argv = sys.argv[1:]
    if argv[:1] == ["statusline"] and any(a == "--journal" or a.startswith("--journal=") for a in argv):
        from tui.commands.statusline_cmd import fast_main

        return fast_main(argv[1:])
    from tui.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
