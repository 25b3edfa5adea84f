"""SQLite journal of proxied requests: schema, writer and reader."""
