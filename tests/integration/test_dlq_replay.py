"""``thunderline dlq list / show / replay`` end to end: a replay retires what it fixed, and
replaying twice sends nothing twice."""

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

    listed = _json_lines(_cli(home, "dlq", "list", "--json"))
    assert sorted(r["reason"] for r in listed) == ["too_large", "too_large"]
    assert {r["status"] for r in listed} == {"open"}
    by_name = {Path(str(r["artifact"])).name: str(r["id"]) for r in listed}
    shown = json.loads(_cli(home, "dlq", "show", by_name["medium.bin"]))
    assert shown["event"]["data"]["original"]["data"]["artifact"]["name"] == "medium.bin"
    assert "Traceback" in shown["event"]["data"]["traceback"]

    events_before = sum(1 for _ in Journal(home).iter_events())
    out = _cli(home, "dlq", "replay", TL_MAX_ARTIFACT_BYTES="1000")
    assert "replayed 2: 1 ok, 1 dead-lettered again" in out
    after = {
        Path(str(r["artifact"])).name: r
        for r in _json_lines(_cli(home, "dlq", "list", "--all", "--json"))
    }
    statuses = sorted(
        (Path(str(r["artifact"])).name, r["status"])
        for r in _json_lines(_cli(home, "dlq", "list", "--all", "--json"))
    )
    assert statuses == [("huge.bin", "open"), ("huge.bin", "replayed"), ("medium.bin", "resolved")]
    assert after["medium.bin"]["resolved_by"]
    # the default listing shows only what is still open: the new record of huge.bin
    (still_open,) = _json_lines(_cli(home, "dlq", "list", "--json"))
    assert Path(str(still_open["artifact"])).name == "huge.bin"
    assert still_open["id"] != by_name["huge.bin"]

    # replaying the retired records again sends nothing
    events_mid = sum(1 for _ in Journal(home).iter_events())
    assert events_mid > events_before
    out = _cli(home, "dlq", "replay", by_name["medium.bin"], by_name["huge.bin"])
    assert "nothing to replay" in out
    assert sum(1 for _ in Journal(home).iter_events()) == events_mid
    # the journal traced the one new failure only (nothing is imported back from it)
    assert sum(1 for _ in Journal(home).iter_dlq()) == 3
