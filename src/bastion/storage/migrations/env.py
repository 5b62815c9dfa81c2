"""Alembic environment: always given a connection by :meth:`bastion.storage.db.Database.upgrade`,
so migrations run on the same engine, URL and driver as the server."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from bastion.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `bastion db upgrade`, which supplies the connection")

if connection.dialect.name == "postgresql":
    # Several nodes may start at once: one migrates, the others wait and then find nothing to do.
    connection.execute(text("SELECT pg_advisory_xact_lock(7422001)"))

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
