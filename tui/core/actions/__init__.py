"""One-key actions: server restart, pane and proxy compaction, MCP switches (no UI code here)."""
