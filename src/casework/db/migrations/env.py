"""Alembic environment: always run from code with a connection (see casework.db.migrate)."""

from alembic import context

from casework.db.models import Base
from casework.db.search import NOT_IN_MODELS

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite can only ALTER a table by copying it; batch mode does that for us
    compare_type=True,
    # Full-text search objects are made by hand in 0003 (casework.db.search): autogenerate must leave them be.
    include_name=lambda name, type_, parent: not (name or "").startswith(NOT_IN_MODELS),
)
with context.begin_transaction():
    context.run_migrations()
