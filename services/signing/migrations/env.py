"""Alembic environment of the signing service: runs on the connection `groundswell signing migrate` gives."""

from alembic import context

from services.signing.db import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
