"""Collectors for llama-server state and GPU usage, returning frozen snapshots.

Import the submodules directly (`tui.core.poll.snapshots`, `.server_poller`, `.gpu`): this package
file stays empty so that importing the snapshot types does not pull in httpx or NVML.
"""
