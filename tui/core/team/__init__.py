"""Team mode: user keys (only their hashes are kept) and who sent each request through the proxy."""
