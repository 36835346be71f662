"""The embedded default: NATS from the wheel, SQLite, a local SMTP sink, the three services."""
