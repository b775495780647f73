"""Alembic environment: always run from code with a connection (see casework.db.migrate)."""

from alembic import context

from casework.db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite can only ALTER a table by copying it; batch mode does that for us
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
