"""Collectors for llama-server state and GPU usage, returning frozen snapshots."""
