"""The ``--json`` record: every line of a real run (nlp and infer on) validates against the
published schema (``thunderline ingest --json-schema``) and carries the stage results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from thunderline.cli import app

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("IDLE crédits.txt", "python-logo.jpg", "rabbitmq-bunny.png", "bundle.zip"):
        shutil.copy(EXAMPLES / name, folder / name)
    (folder / "gone.txt").symlink_to(tmp_path / "missing")  # a dead link: a DLQ record
    return folder


def test_every_json_record_of_a_real_run_matches_the_schema(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    printed = runner.invoke(app, ["ingest", "--json-schema"])
    assert printed.exit_code == 0, printed.output
    schema = json.loads(printed.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    monkeypatch.setenv("TL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TL_ONNX_ENABLED", "true")
    monkeypatch.setenv("TL_ONNX_MODEL_DIR", str(REPO / "models"))
    result = runner.invoke(app, ["ingest", str(inputs), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(records) >= 6  # 5 inputs + the zip's members
    for record in records:
        problems = sorted(validator.iter_errors(record), key=str)
        assert not problems, (record["path"], [p.message for p in problems])

    by_name = {r["name"]: r for r in records}
    text = by_name["IDLE crédits.txt"]
    assert text["outcome"] == "ok" and text["voxel_id"]
    assert text["classification"]["label"] == "txt"
    assert text["nlp"]["lang"] == "en" and text["nlp"]["sentences"] > 0  # a summary: counts
    assert text["nlp"]["top_entities"] and "noun_chunks" in text["nlp"]
    assert text["inference"]["model"] == "text_classifier"  # beside spaCy's result
    inference = by_name["rabbitmq-bunny.png"]["inference"]
    assert inference["model"] == "image_classifier" and inference["version"]
    assert inference["top_k"] and 0 <= inference["top_k"][0]["score"] <= 1
    # a rabbit is not clothing: below the model's threshold, raw scores kept
    assert inference["confident"] is False and inference["threshold"] == 0.7
    # the 16x16 logo is under the model's declared 28x28 minimum: not given to it, and why
    logo = by_name["python-logo.jpg"]
    assert logo["outcome"] == "ok" and logo.get("inference") is None
    assert any("under the 28x28 minimum" in n for n in logo["notes"]), logo["notes"]
    members = [r for r in records if r["archive"]]
    assert members and all(r["archive"].endswith("bundle.zip") for r in members)
    [dead] = [r for r in records if r["outcome"] == "dlq"]
    assert dead["stage"] == "classify" and dead["reason"] == "not_found"
    assert dead["error"]["type"] == "ArtifactNotFoundError" and dead["voxel_id"] is None


def test_full_json_records_carry_every_sentence_and_match_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    schema = json.loads(runner.invoke(app, ["ingest", "--json-schema"]).stdout)
    validator = jsonschema.Draft202012Validator(schema)
    monkeypatch.setenv("TL_HOME", str(tmp_path / "home"))
    doc = EXAMPLES / "idle-history.txt"
    summary = runner.invoke(app, ["ingest", str(doc), "--json"])
    full = runner.invoke(app, ["ingest", str(doc), "--json", "--full"])
    assert summary.exit_code == 0 and full.exit_code == 0, (summary.output, full.output)
    (brief,) = [json.loads(line) for line in summary.stdout.splitlines()]
    (record,) = [json.loads(line) for line in full.stdout.splitlines()]
    for line in (brief, record):
        assert not list(validator.iter_errors(line))
    assert isinstance(record["nlp"]["sentences"], list)
    assert brief["nlp"]["sentences"] == len(record["nlp"]["sentences"]) > 10
    assert brief["nlp"]["entities"] == len(record["nlp"]["entities"])
    assert len(summary.stdout) * 3 < len(full.stdout)


def test_a_skipped_folder_is_a_json_record_not_silence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ``--json`` a symlinked folder (never followed) and, without ``-r``, a sub-folder
    each leave a record (``outcome`` skipped, valid against the schema), as the table does."""
    runner = CliRunner()
    schema = json.loads(runner.invoke(app, ["ingest", "--json-schema"]).stdout)
    validator = jsonschema.Draft202012Validator(schema)
    folder, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    for f in (folder, elsewhere, folder / "sub"):
        f.mkdir()
    (folder / "a.txt").write_text("a plain file")
    (folder / "sub" / "b.txt").write_text("one level down")
    (elsewhere / "secret.txt").write_text("not to be walked")
    (folder / "linked").symlink_to(elsewhere)
    monkeypatch.setenv("TL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TL_ENABLE_ML_PIPELINE", "false")
    for args, skipped in (
        ([], {"linked": "symlinked_directory", "sub": "directory"}),
        (["-r"], {"linked": "symlinked_directory"}),
    ):
        result = runner.invoke(app, ["ingest", str(folder), "--json", *args])
        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        for record in records:
            assert not list(validator.iter_errors(record)), record
        found = {Path(r["path"]).name: r["reason"] for r in records if r["outcome"] == "skipped"}
        assert found == skipped
        linked = next(r for r in records if r["outcome"] == "skipped" and r["name"] == "linked")
        assert linked["notes"] and "symlinked directory" in linked["notes"][0]
        ingested = {Path(r["path"]).name for r in records if r["outcome"] == "ok"}
        assert "secret.txt" not in ingested and "a.txt" in ingested
