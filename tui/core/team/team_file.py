"""Adding and removing users in team.toml (0600 in the config dir); only key hashes are written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tui.core.config import ConfigError, read_team_file, team_file_path


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_team_file(users: dict[str, str], path: Path | None = None) -> Path:
    """Replace the file with these users (name -> hash), created 0600 in a 0700 folder, atomically."""
    path = path or team_file_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = [
        "# Written by `ctxbudget team add/remove`: user name = hash of the user's key (never the key).",
        "[team.users]",
        *(f"{name} = {_quoted(digest)}" for name, digest in sorted(users.items())),
    ]
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)  # mkstemp: 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def add_user(name: str, digest: str, path: Path | None = None) -> Path:
    """Store one user's key hash; a name already stored is an error (remove it first)."""
    users = read_team_file(path)
    if name in users:
        raise ConfigError(
            f"user {name!r} already has a key; `ctxbudget team remove {name}` first "
            "(the old key stops working)"
        )
    return write_team_file({**users, name: digest}, path)


def remove_user(name: str, path: Path | None = None) -> bool:
    """Drop one user from the file; False when it was not there."""
    users = read_team_file(path)
    if name not in users:
        return False
    del users[name]
    write_team_file(users, path)
    return True
