"""High availability: the duty guard and its stores (SQLite, PostgreSQL), migrations, export/import."""
