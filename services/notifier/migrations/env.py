"""Alembic environment of the notifier service: runs on the connection `groundswell notifier migrate` gives."""

from alembic import context

from services.notifier.db import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
