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
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Table, create_engine, event, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.sql import Select
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


class DriverQuery:
    """A ``SELECT`` compiled once for an engine's dialect and run on a pooled DBAPI cursor.

    For the hottest single-row reads (a verified payload read): SQLAlchemy Core's per-call
    execution machinery (execution context, parameter processing, result wrapping) costs
    several times what the database spends on a primary-key look-up (profile in
    docs/ARCHITECTURE.md, "Verified reads"). The statement is still built with SQLAlchemy and
    compiled by its dialect (no hand-written SQL per backend); connections still come from the
    engine's pool (pre-ping, timeouts and reset on return as for every other query), and
    errors are translated as :func:`backend_errors` does. Only columns whose driver values
    need no SQLAlchemy result processing belong here (strings, bytes, integers).

    Args:
        engine: The engine whose pool and dialect are used.
        stmt: The statement; its bind parameters are given by name to :meth:`first`.
        what: The words of a :class:`BackendError` message (``"<what> failed: ..."``).
    """

    def __init__(self, engine: Engine, stmt: Select[Any], what: str) -> None:
        self.engine = engine
        self.what = what
        compiled = stmt.compile(dialect=engine.dialect)
        self.sql = compiled.string
        #: positional dialects (SQLite's qmark) take a tuple in this order, others the dict
        self.order: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if engine.dialect.positional else None
        )
        self.driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    def first(self, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row (a tuple) for these parameters, or None.

        Raises:
            BackendError: the pool or the driver failed (a lost connection is invalidated).
        """
        args: Any = tuple(params[k] for k in self.order) if self.order is not None else params
        try:
            conn = self.engine.raw_connection()
            cursor: Any = None
            try:
                cursor = conn.cursor()
                cursor.execute(self.sql, args)
                row = cursor.fetchone()
                cursor.close()
            except self.driver_error as exc:
                if self.engine.dialect.is_disconnect(cast(Any, exc), conn.dbapi_connection, cursor):
                    conn.invalidate(exc)
                raise
            finally:
                conn.close()  # back to the pool (which rolls the read's transaction back)
        except (SQLAlchemyError, self.driver_error) as exc:
            raise BackendError(f"{self.what} failed: {exc}") from exc
        return None if row is None else tuple(row)


class DriverInsert:
    """An ``INSERT`` compiled once for an engine's dialect, run as the driver's ``executemany``.

    For the bulk write's voxel and payload rows: SQLAlchemy Core's ``executemany`` builds an
    execution context and processes every row's parameters in Python (``construct_params``
    per row), a tenth of a batch's client CPU. The statement is still built with SQLAlchemy
    and compiled by its dialect; the rows go through the caller's connection (its transaction,
    its error translation) with ``exec_driver_sql``. Only columns whose values the driver
    takes as they are belong here (strings, bytes, integers, floats: no bind processing).

    Args:
        engine: The engine whose dialect compiles the statement.
        stmt: The ``INSERT`` (with its ``ON CONFLICT`` clause).
        columns: The columns every row gives, by name.
    """

    def __init__(self, engine: Engine, stmt: Insert, columns: tuple[str, ...]) -> None:
        compiled = stmt.compile(dialect=engine.dialect, column_keys=list(columns))
        self.sql = compiled.string
        #: positional dialects (SQLite's qmark) take tuples in this order, others the dicts
        self.order: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if engine.dialect.positional else None
        )
        if set(self.order or compiled.binds) != set(columns):  # pragma: no cover - a typo
            raise ValueError(f"compiled parameters differ from the columns {columns}")

    def run(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        """Insert ``rows`` in ``conn``'s transaction; the driver's row count (rows inserted)."""
        order = self.order
        params: Any = [tuple(row[k] for k in order) for row in rows] if order is not None else rows
        result = conn.exec_driver_sql(
            self.sql, params, execution_options={"preserve_rowcount": True}
        )
        return int(result.rowcount)


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
