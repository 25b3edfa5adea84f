"""The pass-through reverse proxy between a coding agent and llama-server (import from its modules)."""
