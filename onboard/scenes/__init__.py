"""Scene reading: the in-memory scene and one reader per file format, streamed a strip at a time."""
