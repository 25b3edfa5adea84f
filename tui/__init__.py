"""ctxbudget: a context-budget dashboard and proxy for coding agents on llama-server."""

__version__ = "0.1.0"
