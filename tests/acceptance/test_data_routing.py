"""Data and configuration are stored with their text but skip NER and the text model (issue 18
item 6): a real CSV (``examples/timezones.csv``), a TSV and a JSON schema through the whole
pipeline (nlp and infer on) are searchable and printable (``voxels text``) and carry no spaCy
result and no ``text_classifier`` label; prose beside them still gets both. A route that sends
data to ``infer`` anyway does not make the prose text model apply: the file is passed on with
the reason."""

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
TSV = (
    "city\tcountry\tpopulation\tmayor\n"
    "Berlin\tGermany\t3645000\tKai Wegner\n"
    "Paris\tFrance\t2161000\tAnne Hidalgo\n"
    "Madrid\tSpain\t3223000\tJose Luis Martinez-Almeida\n"
    "Rome\tItaly\t2873000\tRoberto Gualtieri\n"
    "London\tUnited Kingdom\t8982000\tSadiq Khan\n"
)


def _schema() -> Path:
    """A real JSON file: the JSON Schema draft-07 meta-schema jsonschema ships."""
    import jsonschema_specifications

    found = Path(jsonschema_specifications.__file__).parent / "schemas/draft7/metaschema.json"
    assert found.is_file()
    return found


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(EXAMPLES / "timezones.csv", folder / "timezones.csv")
    shutil.copy(EXAMPLES / "python-history.txt", folder / "python-history.txt")
    shutil.copy(_schema(), folder / "metaschema.json")
    (folder / "cities.tsv").write_text(TSV, encoding="utf-8")
    return folder


def _ingest(
    runner: CliRunner, inputs: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> dict[str, dict[str, object]]:
    monkeypatch.setenv("TL_HOME", str(home))
    monkeypatch.setenv("TL_ONNX_ENABLED", "true")
    monkeypatch.setenv("TL_ONNX_MODEL_DIR", str(REPO / "models"))
    result = runner.invoke(app, ["ingest", str(inputs), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {str(r["name"]): r for r in records}


def test_csv_tsv_and_json_are_stored_with_text_without_ner_or_text_model(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    by_name = _ingest(runner, inputs, monkeypatch, tmp_path / "home")
    assert set(by_name) == {"timezones.csv", "python-history.txt", "metaschema.json", "cities.tsv"}
    labels = {n: r["classification"]["label"] for n, r in by_name.items()}  # type: ignore[index]
    assert labels["timezones.csv"] == "csv" and labels["cities.tsv"] == "tsv"
    assert labels["metaschema.json"] == "json"
    for name in ("timezones.csv", "cities.tsv", "metaschema.json"):
        record = by_name[name]
        assert record["outcome"] == "ok" and record["voxel_id"], record
        assert record["nlp"] is None, (name, record["nlp"])  # no spaCy, so no entities
        assert record["inference"] is None, (name, record["inference"])  # no text model
        assert record["failed"] == [] and record["skipped"] == [], record
    prose = by_name["python-history.txt"]  # beside them prose still gets both
    assert prose["nlp"]["sentences"] > 0  # type: ignore[index]
    assert prose["inference"]["model"] == "text_classifier"  # type: ignore[index]

    # stored with its text: printable and searchable
    csv_id = str(by_name["timezones.csv"]["voxel_id"])
    text = runner.invoke(app, ["voxels", "text", csv_id])
    assert text.exit_code == 0, text.output
    assert "Europe/Andorra" in text.stdout and "Asia/Kabul" in text.stdout
    found = runner.invoke(app, ["search", "Andorra", "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)["hits"]
    assert [h["name"] for h in hits] == ["timezones.csv"]
    tsv_hits = json.loads(runner.invoke(app, ["search", "Hidalgo", "--json"]).stdout)["hits"]
    assert [h["name"] for h in tsv_hits] == ["cities.tsv"]


def test_a_route_to_infer_does_not_give_data_to_the_prose_text_model(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "TL_ROUTES",
        json.dumps({"csv": ["extract", "infer", "package"], "tsv": ["extract", "infer"]}),
    )
    runner = CliRunner()
    by_name = _ingest(runner, inputs, monkeypatch, tmp_path / "home")
    for name, label in (("timezones.csv", "csv"), ("cities.tsv", "tsv")):
        record = by_name[name]
        assert record["outcome"] == "ok" and record["inference"] is None, record
        notes = [str(n) for n in record["notes"]]  # type: ignore[attr-defined]
        wanted = f"tabular data ({label}): the text model applies to prose and source code"
        assert any(n.startswith("infer") and wanted in n for n in notes), notes
    schema = json.loads(runner.invoke(app, ["ingest", "--json-schema"]).stdout)
    validator = jsonschema.Draft202012Validator(schema)
    for record in by_name.values():
        assert not list(validator.iter_errors(record)), record["name"]
