"""Alembic environment: runs on the connection handed over in ``config.attributes``.

:func:`thunderline.voxel.db.migrate` builds the Alembic config in code (no ``alembic.ini``) and
passes an open connection; this file only runs the migrations on it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from thunderline.voxel.tables import metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through the alembic CLI
    raise RuntimeError("thunderline voxel migrations run through thunderline.voxel.db.migrate")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    version_table="thunderline_voxel_version",
)
with context.begin_transaction():
    context.run_migrations()
