"""``thunderline dlq list / show / replay / dismiss / purge`` end to end: a replay retires what
it fixed, replaying twice sends nothing twice, permanent failures are sent only when forced,
repeated failures of one file are one group, dismissed records leave the open list and purge
deletes closed ones."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from thunderline.cli import app
from thunderline.journal import Journal

runner = CliRunner()


def _cli(home: Path, *args: str, **env: str) -> str:
    result = runner.invoke(
        app,
        list(args),
        env={"TL_HOME": str(home), "TL_ENABLE_ML_PIPELINE": "false", "COLUMNS": "250", **env},
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_replay_marks_resolves_and_never_sends_twice(tmp_path: Path) -> None:
    home, inbox = tmp_path / "home", tmp_path / "in"
    inbox.mkdir()
    (inbox / "medium.bin").write_bytes(os.urandom(300))  # too large now, fine after
    (inbox / "huge.bin").write_bytes(os.urandom(5000))  # too large either way
    (inbox / "small.bin").write_bytes(os.urandom(50))
    _cli(home, "ingest", "--json", str(inbox), TL_MAX_ARTIFACT_BYTES="100")

    listed = _json_lines(_cli(home, "dlq", "list", "--records", "--json"))
    assert sorted(r["reason"] for r in listed) == ["too_large", "too_large"]
    assert {r["status"] for r in listed} == {"open"}
    by_name = {Path(str(r["artifact"])).name: str(r["id"]) for r in listed}
    shown = json.loads(_cli(home, "dlq", "show", by_name["medium.bin"]))
    assert shown["event"]["data"]["original"]["data"]["artifact"]["name"] == "medium.bin"
    assert "Traceback" in shown["event"]["data"]["traceback"]

    events_before = sum(1 for _ in Journal(home).iter_events())
    # too large is permanent: sent only when forced
    out = _cli(home, "dlq", "replay", TL_MAX_ARTIFACT_BYTES="1000")
    assert "skipped 2 (2 permanent)" in out and "nothing to replay" in out
    out = _cli(home, "dlq", "replay", "--all", TL_MAX_ARTIFACT_BYTES="1000")
    assert "replayed 2: 1 ok, 1 dead-lettered again" in out
    after = {
        Path(str(r["artifact"])).name: r
        for r in _json_lines(_cli(home, "dlq", "list", "--records", "--all", "--json"))
    }
    statuses = sorted(
        (Path(str(r["artifact"])).name, r["status"])
        for r in _json_lines(_cli(home, "dlq", "list", "--records", "--all", "--json"))
    )
    assert statuses == [("huge.bin", "open"), ("huge.bin", "replayed"), ("medium.bin", "resolved")]
    assert after["medium.bin"]["resolved_by"]
    # the default listing shows only what is still open: the new record of huge.bin
    (still_open,) = _json_lines(_cli(home, "dlq", "list", "--records", "--json"))
    assert Path(str(still_open["artifact"])).name == "huge.bin"
    assert still_open["id"] != by_name["huge.bin"]

    # replaying the retired records again sends nothing
    events_mid = sum(1 for _ in Journal(home).iter_events())
    assert events_mid > events_before
    out = _cli(home, "dlq", "replay", "--all", by_name["medium.bin"], by_name["huge.bin"])
    assert "nothing to replay" in out
    assert sum(1 for _ in Journal(home).iter_events()) == events_mid
    # the journal traced the one new failure only (nothing is imported back from it)
    assert sum(1 for _ in Journal(home).iter_dlq()) == 3


def test_triage_groups_replays_retryable_only_dismisses_and_purges(tmp_path: Path) -> None:
    """A file too large (permanent) ingested twice is one group of two; a classify timeout
    (retryable) is replayed by default and resolves; the permanent group is dismissed by its
    group id and purged; short ids work everywhere, an ambiguous one is refused."""
    home, inbox = tmp_path / "home", tmp_path / "in"
    inbox.mkdir()
    (inbox / "huge.bin").write_bytes(os.urandom(5000))
    (inbox / "slow.bin").write_bytes(os.urandom(50))
    for _ in range(2):
        _cli(home, "ingest", "--json", str(inbox / "huge.bin"), TL_MAX_ARTIFACT_BYTES="100")
    _cli(
        home,
        "ingest",
        "--json",
        str(inbox / "slow.bin"),
        TL_CLASSIFY_TIMEOUT_S="0.000001",
        TL_MAX_ATTEMPTS="1",
    )
    groups = {
        Path(str(g["artifact"])).name: g for g in _json_lines(_cli(home, "dlq", "list", "--json"))
    }
    assert set(groups) == {"huge.bin", "slow.bin"}
    huge, slow = groups["huge.bin"], groups["slow.bin"]
    assert (
        huge["count"] == 2 and huge["permanence"] == "permanent" and huge["reason"] == "too_large"
    )
    assert slow["count"] == 1 and slow["permanence"] == "retryable" and slow["reason"] == "timeout"
    assert float(str(huge["first_unix"])) <= float(str(huge["last_unix"]))
    table = _cli(home, "dlq", "list")
    assert str(huge["group_id"]) in table and "permanent" in table and "retryable" in table
    latest = huge["latest"]
    assert isinstance(latest, dict) and latest["retryable"] is False
    shown = json.loads(_cli(home, "dlq", "show", str(latest["short_id"])))
    assert shown["id"] == latest["id"] and shown["permanence"] == "permanent"

    # the default replay sends the retryable record only, and says what it skipped and why
    out = _cli(home, "dlq", "replay")
    assert "replayed 1: 1 ok, 0 dead-lettered again" in out
    assert "skipped 2 (2 permanent); --all sends permanent and unknown ones too" in out
    records = _json_lines(_cli(home, "dlq", "list", "--records", "--all", "--json"))
    assert sorted((Path(str(r["artifact"])).name, r["status"]) for r in records) == [
        ("huge.bin", "open"),
        ("huge.bin", "open"),
        ("slow.bin", "resolved"),
    ]

    # an id fragment both records share is ambiguous: a clear error, never a guess
    ids = [str(r["id"]) for r in records]
    result = runner.invoke(app, ["dlq", "show", ids[0][:4]], env={"TL_HOME": str(home)})
    assert result.exit_code == 1 and "matches 3 records" in result.output

    # dismiss the permanent group by its id: who/when/why, gone from the open list
    out = _cli(home, "dlq", "dismiss", "--group", str(huge["group_id"])[:6], "--reason", "broken")
    assert "dismissed 2 record(s)" in out
    assert _json_lines(_cli(home, "dlq", "list", "--json")) == []
    dismissed = _json_lines(
        _cli(home, "dlq", "list", "--records", "--status", "dismissed", "--json")
    )
    assert len(dismissed) == 2
    assert all(
        r["dismiss_note"] == "broken" and str(r["dismissed_by"]).startswith("cli")
        for r in dismissed
    )
    result = runner.invoke(
        app, ["dlq", "dismiss", "--group", str(huge["group_id"])], env={"TL_HOME": str(home)}
    )
    assert result.exit_code == 2 and "--reason" in result.output

    # purge: nothing is that old yet; --dry-run counts; then the closed records go
    assert "deleted 0 closed record(s) older than 1d" in _cli(
        home, "dlq", "purge", "--older-than", "1d"
    )
    out = _cli(home, "dlq", "purge", "--older-than", "0s", "--dry-run")
    assert "would delete 3 closed record(s) older than 0s (2 dismissed, 1 resolved)" in out
    assert len(_json_lines(_cli(home, "dlq", "list", "--records", "--all", "--json"))) == 3
    assert "deleted 3" in _cli(home, "dlq", "purge", "--older-than", "0s")
    assert _json_lines(_cli(home, "dlq", "list", "--records", "--all", "--json")) == []
    bad = runner.invoke(app, ["dlq", "purge", "--older-than", "soon"], env={"TL_HOME": str(home)})
    assert bad.exit_code == 2 and "not a number and a unit" in bad.output
