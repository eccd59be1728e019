"""``thunderline doctor`` rows of the voxel layer: database reachable and migrated, store writable."""

from __future__ import annotations

from thunderline.config import Settings
from thunderline.voxel.db import current_revision, head_revision, make_engine, migrate

Row = tuple[str, str, str]


def doctor_report(settings: Settings) -> list[Row]:
    """Check the voxel database (reachable, migrated to head) and the object store (writable)."""
    rows: list[Row] = []
    engine = None
    try:
        engine = make_engine(settings.resolved_database_url, settings.db)
        migrate(engine)
        current = current_revision(engine)
        head = head_revision()
        shown = engine.url.render_as_string(hide_password=True)
        if current == head:
            rows.append(("voxel db", "ok", f"{shown} at revision {current}"))
        else:
            rows.append(("voxel db", "fail", f"{shown} at {current}, expected {head}"))
    except Exception as exc:
        rows.append(("voxel db", "fail", f"{type(exc).__name__}: {exc}"))
    finally:
        if engine is not None:
            engine.dispose()
    try:
        from thunderline.objects.factory import open_object_store

        store = open_object_store(settings)
        probe = b"thunderline doctor probe\n"
        stored = store.put_bytes(probe)
        if store.get_bytes(stored.sha256) != probe:
            raise RuntimeError("read back different bytes")
        rows.append(("object store", "ok", f"{store.url} writable, reads verified"))
    except Exception as exc:
        rows.append(("object store", "fail", f"{type(exc).__name__}: {exc}"))
    return rows
