"""Helpers for tests: tiny GGUF models, llama-server processes, the proxy process, coding agents."""
