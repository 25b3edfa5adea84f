"""User keys: random, shown once, kept only as a SHA-256 hash (a 256-bit random key needs no slow hash)."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "ctxb-"


def new_key() -> str:
    """A new random user key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key: "sha256:<hex>"."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
