"""Request transforms that make prompts cheaper for llama-server: pure functions over parsed bodies.

Import from the modules: `registry` (names, descriptions, builders), `settings`, `pipeline`, and one
module per transform. This package imports nothing, so loading the settings stays cheap.
"""
