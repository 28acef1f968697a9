"""One storage contract, three backends: memory, SQLite and PostgreSQL."""
