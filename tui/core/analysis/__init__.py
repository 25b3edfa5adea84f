"""Off-the-hot-path analysis: captures from the proxy, the worker process, savings, sinks."""
