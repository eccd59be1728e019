"""Hostile inputs through the real CLI: every name the OS allows is ingested or dead-lettered
for a real reason, exactly once; names round-trip exactly through ``--json``, the journal, the
DLQ, the outcome store and the voxel store; and nothing a name holds reaches the terminal raw.

Every input is built here, at test time: names with invalid UTF-8, control characters,
terminal escape sequences, rich markup, bidi overrides, leading dashes, 255-byte names, a path
longer than PATH_MAX (made with ``openat``), a FIFO, a symlink out of the root, and a real
file named beside the folder on the command line. A missing path on the command line is a
usage error (exit 2) before anything is ingested.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thunderline.cli import app
from thunderline.config import load_settings
from thunderline.journal import Journal
from thunderline.outcomes import OutcomeStore
from thunderline.voxel.store import VoxelStore

runner = CliRunner()
PATH_MAX = 4096

#: Raw file names (bytes, as the OS has them) -> what must become of them.
NAMES: dict[bytes, str] = {
    b"bad-\xff\xfe-utf8.bin": "ok",
    b"latin1-caf\xe9.bin": "ok",
    b"ctl-\x01\x07-bell.bin": "ok",
    b"new\nline.bin": "ok",
    b"tab\there.bin": "ok",
    b"\x1b[31mred\x1b[0m.bin": "ok",
    b"\x1b]0;pwned-title\x07.bin": "ok",
    b"[bold red]markup[blink].bin": "ok",
    "evil\u202etxt.exe".encode(): "ok",
    "\u200fright-to-left-mark.bin".encode(): "ok",
    b"-rf": "ok",
    b"--help.bin": "ok",
    b"back\\slash.bin": "ok",
    b"n" * 251 + b".bin": "ok",  # 255 bytes, the most a name may have
    ("é" * 125 + "x.bin").encode(): "ok",  # 255 bytes of UTF-8
    b"fifo-\xff\x1b[2J": "dlq:classify:not_a_file",
    b"escape-\xfe-link": "dlq:classify:path_escape",
}


def _build(tmp_path: Path) -> tuple[Path, dict[bytes, bytes], bytes]:
    """The inbox (bytes paths -> content of regular files) and the deep file's bytes path."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    raw_inbox = os.fsencode(inbox)
    contents: dict[bytes, bytes] = {}
    (tmp_path / "secret").write_bytes(b"outside the root")
    for name, fate in NAMES.items():
        path = raw_inbox + b"/" + name
        if fate.endswith("not_a_file"):
            os.mkfifo(path)
        elif fate.endswith("path_escape"):
            os.symlink(os.fsencode(tmp_path / "secret"), path)
        else:
            data = os.urandom(64) + name
            with open(path, "wb") as handle:
                handle.write(data)
            contents[path] = data
    # a file deeper than PATH_MAX, built component by component
    fd = os.open(raw_inbox, os.O_RDONLY | os.O_DIRECTORY)
    deep = raw_inbox
    while len(deep) <= PATH_MAX + 100:
        part = b"\xff" + b"d" * 240  # undecodable too
        os.mkdir(part, dir_fd=fd)
        child = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd, deep = child, deep + b"/" + part
    leaf = os.open(b"deep-\x1b.bin", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(leaf, b"deep data " + os.urandom(32))
    os.close(leaf)
    os.close(fd)
    deep_file = deep + b"/deep-\x1b.bin"
    return inbox, contents, deep_file


def _run(home: Path, *args: str) -> str:
    result = runner.invoke(
        app,
        list(args),
        env={"TL_HOME": str(home), "COLUMNS": "400", "TL_MAX_ARTIFACT_BYTES": "100000"},
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.fixture
def hostile(tmp_path: Path):  # type: ignore[no-untyped-def]
    inbox, contents, deep_file = _build(tmp_path)
    beside = tmp_path / "beside.bin"
    beside.write_bytes(b"named on the command line " + os.urandom(16))
    yield inbox, contents, deep_file, beside
    shutil.rmtree(inbox)  # fd-based removal copes with the PATH_MAX+ tree


def test_every_hostile_name_ends_once_for_its_reason_and_round_trips(
    tmp_path: Path, hostile: tuple[Path, dict[bytes, bytes], bytes, Path]
) -> None:
    inbox, contents, deep_file, beside = hostile
    home = tmp_path / "home"
    out = _run(home, "ingest", "--json", "-r", str(inbox), str(beside))
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    expected = {os.fsdecode(os.fsencode(inbox) + b"/" + n): fate for n, fate in NAMES.items()}
    expected[os.fsdecode(deep_file)] = "ok"
    expected[str(beside)] = "ok"
    got: dict[str, list[str]] = {}
    for line in lines:
        fate = "ok" if line["outcome"] == "ok" else f"dlq:{line['stage']}:{line['reason']}"
        got.setdefault(line["path"], []).append(fate)
    # exactly one record per input, with the right reason, and the exact path (round trip)
    assert got == {path: [fate] for path, fate in expected.items()}

    settings = load_settings(home=home)
    by_path = {line["path"]: line for line in lines}
    with VoxelStore(settings) as voxels:
        for raw, data in [*contents.items(), (deep_file, None), (os.fsencode(beside), None)]:
            record = by_path[os.fsdecode(raw)]
            voxel = voxels.get(record["voxel_id"])
            assert voxel.traits["artifact"]["name"] == os.fsdecode(raw).rsplit("/", 1)[1]
            if data is not None:
                assert voxels.read_payload(voxel) == data
    # the journal and the outcome store give the same exact names back
    journal_paths = {
        e.data["artifact"]["path"]
        for e in Journal(home).iter_events()
        if e.type == "ui.command.ingest.received"
    }
    assert journal_paths == set(expected)
    with OutcomeStore(settings) as outcomes:
        for line in lines:
            (record,) = outcomes.by_correlation(line["correlation_id"])
            artifact = (
                record.event.data["original"]["data"]["artifact"]
                if record.kind == "dlq"
                else record.event.data["artifact"]
            )
            assert artifact["path"] == line["path"]
        dlq_names = sorted(
            r.event.data["original"]["data"]["artifact"]["path"] for r in outcomes.dlq()
        )
    assert dlq_names == sorted(p for p, fate in expected.items() if fate.startswith("dlq"))


def test_names_are_shown_escaped_never_raw(
    tmp_path: Path, hostile: tuple[Path, dict[bytes, bytes], bytes, Path]
) -> None:
    inbox, _contents, _deep, _beside = hostile
    home = tmp_path / "home"
    summary = _run(home, "ingest", str(inbox))
    listing = _run(home, "voxels", "list", "--limit", "100")
    dlq = _run(home, "dlq", "list")
    for text in (summary, listing, dlq):
        assert "\x1b" not in text and "\x07" not in text and "\x01" not in text
        assert "\u202e" not in text and "\u200f" not in text
        assert "\udcff" not in text
    assert "\\x1b[31mred\\x1b[0m.bin" in summary
    assert "evil\\u202etxt.exe" in listing
    assert "bad-\\xff\\xfe-utf8.bin" in listing
    assert "[bold red]markup[blink].bin" in summary  # markup printed literally, not applied
    assert "fifo-\\xff\\x1b[2J" in dlq
    assert "not_a_file" in summary and "path_escape" in summary


def test_a_missing_path_is_a_usage_error_and_nothing_is_ingested(tmp_path: Path) -> None:
    home = tmp_path / "home"
    real = tmp_path / "real.txt"
    real.write_text("a real file beside a typo")
    missing = tmp_path / "missing\udcff\x1b[31m.bin"
    result = runner.invoke(
        app, ["ingest", "--json", str(real), str(missing)], env={"TL_HOME": str(home)}
    )
    assert result.exit_code == 2, result.output
    assert "no such file or folder" in result.output and "\x1b" not in result.output
    assert "{" not in result.stdout  # no record: nothing was ingested
    assert not (home / "journal" / "events.jsonl").exists()
