"""Following and parsing the llama-server log: tailer, parser, typed events and request timelines."""
