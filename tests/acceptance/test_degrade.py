"""Degrade, don't drop, as a user sees it: ``ingest --json``, ``dlq``, ``voxels`` (issue 24).

Real inputs and real stages: a truncated PDF (text extraction fails) is stored with its
classification and the failure marked; an SVG is stored with the skipped inference stage and
its reason; an NLP stage made to fail by a real fault (a per-document timeout far too short,
set on purpose) leaves a voxel whose DLQ record ``dlq replay`` turns into the completed voxel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from thunderline.cli import app

REPO = Path(__file__).resolve().parents[2]
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
    '<circle cx="50" cy="50" r="40" stroke="green" stroke-width="4" fill="yellow" />'
    '<text x="10" y="20">Hello</text></svg>\n'
)
runner = CliRunner()


def _cli(home: Path, *args: str, **env: str) -> str:
    result = runner.invoke(app, list(args), env={"TL_HOME": str(home), "COLUMNS": "250", **env})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_truncated_pdf_and_svg_are_stored_with_their_failed_and_skipped_stages(
    tmp_path: Path,
) -> None:
    home, inbox = tmp_path / "home", tmp_path / "in"
    inbox.mkdir()
    pdf = (REPO / "examples" / "shared-mime-info-spec.pdf").read_bytes()
    (inbox / "truncated.pdf").write_bytes(pdf[:20_000])
    (inbox / "logo.svg").write_text(SVG)
    env = {"TL_ONNX_ENABLED": "true", "TL_MAX_ATTEMPTS": "1"}
    records = {r["name"]: r for r in _lines(_cli(home, "ingest", "--json", str(inbox), **env))}
    assert sorted(records) == ["logo.svg", "truncated.pdf"]  # one line per file, no more

    broken = records["truncated.pdf"]
    assert broken["outcome"] == "degraded" and broken["label"] == "pdf" and broken["voxel_id"]
    [failed] = broken["failed"]
    assert (failed["stage"], failed["reason"], failed["error_type"]) == (
        "extract",
        "extraction",
        "ExtractionError",
    )
    assert broken["skipped"] == [{"stage": "nlp", "reason": "skipped: extract failed"}]

    svg = records["logo.svg"]
    assert svg["outcome"] == "ok" and svg["label"] == "svg" and svg["inference"] is None
    [skipped] = svg["skipped"]
    assert skipped["stage"] == "infer" and skipped["reason"].startswith("skipped: ")
    assert "SVG" in skipped["reason"]

    [letter] = _lines(_cli(home, "dlq", "list", "--records", "--json"))
    assert letter["id"] == failed["dlq_id"] and letter["voxel_id"] == broken["voxel_id"]
    assert letter["event"]["data"]["original"]["data"]["artifact"]["name"] == "truncated.pdf"
    assert "Traceback" in letter["event"]["data"]["traceback"]

    stored = json.loads(_cli(home, "voxels", "show", broken["voxel_id"]))
    assert stored["traits"]["classification"]["label"] == "pdf"
    assert [f["stage"] for f in stored["traits"]["failures"]] == ["extract"]
    assert stored["traits"]["failures"][0]["dlq_id"] == letter["id"]
    vector = json.loads(_cli(home, "voxels", "show", svg["voxel_id"]))
    assert [s["stage"] for s in vector["traits"]["skipped"]] == ["infer"]
    briefs = {b["name"]: b for b in _lines(_cli(home, "voxels", "list", "--json"))}
    assert (briefs["truncated.pdf"]["failed"], briefs["truncated.pdf"]["skipped"]) == (
        ["extract"],
        ["nlp"],
    )
    assert (briefs["logo.svg"]["failed"], briefs["logo.svg"]["skipped"]) == ([], ["infer"])
    assert "ok: 2 voxel(s) verified" in _cli(home, "voxels", "verify", "--all")


def test_a_failed_nlp_stage_leaves_a_voxel_that_replay_completes(tmp_path: Path) -> None:
    home, inbox = tmp_path / "home", tmp_path / "in"
    inbox.mkdir()
    (inbox / "history.txt").write_bytes((REPO / "examples" / "python-history.txt").read_bytes())
    fault = {"TL_NLP_DOC_TIMEOUT_S": "0.001", "TL_MAX_ATTEMPTS": "1"}  # NLP times out
    [record] = _lines(_cli(home, "ingest", "--json", str(inbox), **fault))
    assert record["outcome"] == "degraded" and record["nlp"] is None
    assert [f["stage"] for f in record["failed"]] == ["nlp"]
    voxel_id = record["voxel_id"]

    out = _cli(home, "dlq", "replay")  # the default timeout: NLP completes now
    assert "replayed 1: 1 ok" in out
    [letter] = _lines(_cli(home, "dlq", "list", "--all", "--records", "--json"))
    assert letter["status"] == "resolved" and letter["voxel_id"] == voxel_id

    listed = _cli(home, "voxels", "list")
    assert listed.count("history.txt") == 1  # the same voxel, completed: not a second one
    stored = json.loads(_cli(home, "voxels", "show", voxel_id))
    assert stored["id"] == voxel_id and stored["traits"]["nlp"]["lang"] == "en"
    assert "failures" not in stored["traits"]
    assert "ok: 1 voxel(s) verified" in _cli(home, "voxels", "verify", "--all")
