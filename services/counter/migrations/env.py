"""Alembic environment of the counter service: runs on the connection `groundswell counter migrate` gives."""

from alembic import context

from services.counter.db import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
