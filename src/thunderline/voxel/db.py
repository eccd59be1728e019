"""Database engines for the voxel store and the Alembic migrations applied on first use.

The URL comes from ``settings.resolved_database_url``: SQLite by default (a file under
``TL_HOME``; WAL mode, a busy timeout and foreign keys on), PostgreSQL through
``TL_DATABASE_URL`` (``postgresql+psycopg://...``). Migrations ship inside the package and run
programmatically (no ``alembic.ini``); concurrent first uses serialise on a lock (a PostgreSQL
advisory lock, a lock file beside a SQLite database) so only one of them migrates.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Table, create_engine, event, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from thunderline.config import DbSettings, Settings
from thunderline.errors import BackendError, ConfigError

_log = logging.getLogger("thunderline.voxel.db")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "thunderline_voxel_version"
_ADVISORY_LOCK_ID = 0x7468756E  # "thun"
_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _url_option(parsed: Any) -> str:
    value = parsed.query.get("options")
    if isinstance(value, tuple):
        value = " ".join(value)
    return str(value or "")


def make_engine(url: str, db: DbSettings | None = None) -> Engine:
    """An engine for ``url`` (``sqlite:///...`` or ``postgresql+psycopg://...``).

    PostgreSQL connections get ``connect_timeout`` (``TL_DB_CONNECT_TIMEOUT_S``: a server that
    accepts and never answers fails within it), a server-side ``statement_timeout``
    (``TL_DB_STATEMENT_TIMEOUT_S``) and TCP keepalives (a peer that vanishes mid-query is
    noticed); waiting for a pooled connection is bounded by the connect timeout too.
    """
    db = db or DbSettings()
    connect_s, statement_s = db.connect_timeout_s, db.statement_timeout_s
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        connect_args: dict[str, Any] = {
            "connect_timeout": max(1, round(connect_s)),
            # merged with the URL's own ``options`` (a search_path, for instance)
            "options": " ".join(
                filter(
                    None, [_url_option(parsed), f"-c statement_timeout={int(statement_s * 1000)}"]
                )
            ),
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=5,
            pool_timeout=connect_s * 2,
            connect_args=connect_args,
        )
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


def insert_ignore(engine: Engine, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` into ``table`` in the engine's dialect."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return insert(table)  # pragma: no cover - other dialects are refused by make_engine


@contextmanager
def backend_errors(what: str) -> Iterator[None]:
    """Raise a SQLAlchemy error from inside as :class:`BackendError` (``what failed: ...``).

    The one place database errors are translated, as httpx's ``map_httpcore_exceptions``;
    our own errors (a :class:`~thunderline.errors.ThunderlineError` raised inside) pass as
    they are.
    """
    try:
        yield
    except SQLAlchemyError as exc:
        raise BackendError(f"{what} failed: {exc}") from exc


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration shipped with this version."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:  # pragma: no cover - the package always ships a migration
        raise ConfigError("no voxel migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


@contextmanager
def _exclusive(engine: Engine) -> Iterator[Connection]:
    """A connection holding the migration lock of this database."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        lock_path = (
            Path(f"{database}.migrate.lock") if database and database != ":memory:" else None
        )
        handle = open(lock_path, "a+") if lock_path else None  # noqa: SIM115
        try:
            if handle is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            with engine.connect() as conn:
                yield conn
        finally:
            if handle is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_LOCK_ID})
        conn.commit()
        try:
            yield conn
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_LOCK_ID})
            conn.commit()


def migrate(engine: Engine) -> str:
    """Bring the database to the newest revision (once per process and URL); return it."""
    key = engine.url.render_as_string(hide_password=False)
    head = head_revision()
    if key in _migrated:
        return head
    with _migrate_lock:
        if key in _migrated:
            return head
        try:
            if current_revision(engine) != head:
                with _exclusive(engine) as conn:
                    config = _alembic_config(conn)
                    command.upgrade(config, "head")
                    conn.commit()
                    _log.info("voxel database migrated to %s", head)
        except OperationalError as exc:
            where = engine.url.render_as_string(hide_password=True)
            raise BackendError(
                f"voxel database {where} unreachable or not answering "
                f"(TL_DB_CONNECT_TIMEOUT_S): {exc.orig or exc}"
            ) from exc
        except SQLAlchemyError as exc:
            raise BackendError(f"cannot migrate the voxel database: {exc}") from exc
        _migrated.add(key)
    return head


class Tables:
    """Base of the classes that keep their own tables in the voxel database.

    Those are the source ledger, webhooks and result versions. One engine (given, or opened from
    settings and then owned and disposed by :meth:`close`), migrated on first use, and
    :meth:`_run`, which runs a function in one transaction and translates database errors once.

    Args:
        settings: Read for ``TL_DATABASE_URL`` and ``TL_DB_*`` when no engine is given.
        engine: An engine to share (not disposed by :meth:`close`).
    """

    #: The words of a :class:`BackendError` message (``"<what> <step> failed: ..."``).
    what = "database"

    def __init__(self, settings: Settings | None = None, *, engine: Engine | None = None) -> None:
        if engine is None:
            if settings is None:
                raise ValueError(f"{type(self).__name__} needs settings or an engine")
            engine = make_engine(settings.resolved_database_url, settings.db)
            self._owns_engine = True
        else:
            self._owns_engine = False
        self.engine = engine
        migrate(engine)

    def close(self) -> None:
        """Dispose of the engine if this object opened it."""
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, step: str, fn: Any) -> Any:
        """``fn(connection)`` in one transaction; a SQLAlchemy error becomes BackendError."""
        with backend_errors(f"{self.what} {step}"), self.engine.begin() as conn:
            return fn(conn)
