"""``thunderline voxels ...`` through typer's CliRunner on a real store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from thunderline.config import Settings
from thunderline.eventdata import (
    Classified,
    Inference,
    InferenceCompleted,
    LabelScore,
    NlpAnalysis,
    NlpProcessed,
    data_of,
    extend,
    typed_event,
)
from thunderline.events import INFERENCE_COMPLETED, NLP_PROCESSED
from thunderline.ids import short
from thunderline.nlp.result import Entity
from thunderline.objects.factory import open_object_store
from thunderline.voxel.builder import VoxelBuilder
from thunderline.voxel.cli import parse_since, voxels_app
from thunderline.voxel.store import VoxelStore

from ._helpers import classified_event

runner = CliRunner()


@pytest.fixture
def populated(make_settings: Callable[..., Settings]) -> tuple[Settings, dict[str, str]]:
    settings = make_settings()
    objects = open_object_store(settings)
    with VoxelStore(settings, objects) as voxels:
        builder = VoxelBuilder(voxels.ancestor_ids)
        zipv = voxels.put(
            builder.build(
                classified_event(
                    objects, b"PK-archive", name="bundle.zip", label="zip", group="archive"
                )
            )
        ).voxel
        ids = {"zip": zipv.id}
        for i, name in enumerate(("readme.md", "data.csv")):
            parent = {"voxel_id": zipv.id, "event_id": "e", "index": i}
            event = classified_event(objects, f"member {i}".encode(), name=name, parent=parent)
            ids[name] = voxels.put(builder.build(event)).voxel.id
    return settings, ids


def _invoke(settings: Settings, *args: str) -> object:
    return runner.invoke(
        voxels_app, list(args), env={"TL_HOME": str(settings.home), "COLUMNS": "200"}
    )


def test_list_show_and_filters(populated: tuple[Settings, dict[str, str]]) -> None:
    settings, ids = populated
    result = _invoke(settings, "list")
    assert result.exit_code == 0, result.output
    assert all(short(vid) in result.output for vid in ids.values())
    only_zip = _invoke(settings, "list", "--label", "ZIP")  # labels in any case
    assert short(ids["zip"]) in only_zip.output
    assert short(ids["readme.md"]) not in only_zip.output
    assert short(ids["zip"]) not in _invoke(settings, "list", "--since", "2099-01-01").output
    assert "1 shown" in _invoke(settings, "list", "--limit", "1").output
    shown = _invoke(settings, "show", ids["zip"][:30])
    assert shown.exit_code == 0 and '"children"' in shown.output
    assert ids["readme.md"] in shown.output
    assert _invoke(settings, "show", "ffffffff").exit_code == 1


def test_lineage_tree(populated: tuple[Settings, dict[str, str]]) -> None:
    settings, ids = populated
    down = _invoke(settings, "lineage", ids["zip"], "--descendants")
    assert down.exit_code == 0
    assert "descendants of" in down.output and "ancestors of" not in down.output
    assert short(ids["readme.md"]) in down.output and short(ids["data.csv"]) in down.output
    up = _invoke(settings, "lineage", short(ids["data.csv"]), "--ancestors")
    assert short(ids["zip"]) in up.output and "bundle.zip" in up.output
    both = _invoke(settings, "lineage", ids["zip"])
    assert "ancestors of" in both.output and "descendants of" in both.output


def test_cat_verify_and_tampering(populated: tuple[Settings, dict[str, str]]) -> None:
    settings, ids = populated
    cat = runner.invoke(voxels_app, ["cat", ids["readme.md"]], env={"TL_HOME": str(settings.home)})
    assert cat.exit_code == 0 and cat.stdout_bytes == b"member 0"
    ok = _invoke(settings, "verify", "--all")
    assert ok.exit_code == 0 and "3 voxel(s) verified" in ok.output
    db = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        conn.execute("update voxel_payloads set data = ? where size = 8", (b"member X",))
    bad = _invoke(settings, "verify", "--all")
    assert bad.exit_code == 1 and "checksum_mismatch" in bad.output
    assert _invoke(settings, "verify", ids["zip"]).exit_code == 0
    tampered = runner.invoke(
        voxels_app, ["cat", ids["readme.md"]], env={"TL_HOME": str(settings.home)}
    )
    assert tampered.exit_code == 1 and b"member" not in tampered.stdout_bytes
    assert _invoke(settings, "verify").exit_code == 2


def test_verify_reports_an_edited_index_column(
    populated: tuple[Settings, dict[str, str]],
) -> None:
    settings, ids = populated
    db = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        conn.execute("update voxels set label = 'pdf' where id = ?", (ids["data.csv"],))
    bad = _invoke(settings, "verify", "--all")
    assert bad.exit_code == 1, bad.output
    assert "index_mismatch" in bad.output and "column label is 'pdf'" in bad.output
    assert "1 of 3 voxels failed" in bad.output


def test_parse_since() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now=now) == datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    assert parse_since("1d", now=now) == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_since("2026-01-01T00:00") == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(typer.BadParameter):
        parse_since("yesterday")


def test_short_ids_are_accepted_everywhere_and_ambiguity_is_named(
    populated: tuple[Settings, dict[str, str]],
) -> None:
    settings, ids = populated
    tail = short(ids["readme.md"])
    assert len(tail) == 12 and ids["readme.md"].endswith(tail)
    shown = _invoke(settings, "show", tail.upper())
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["id"] == ids["readme.md"]
    assert _invoke(settings, "cat", tail).exit_code == 0
    assert _invoke(settings, "verify", tail[-6:]).exit_code == 0  # part of the tail
    assert _invoke(settings, "lineage", tail).exit_code == 0
    # every id of the fixture starts with the same time digits: a prefix that short is
    # ambiguous, and the error names the candidates by their short ids
    common = ids["zip"][:6]
    assert all(v.startswith(common) for v in ids.values())
    ambiguous = _invoke(settings, "show", common)
    assert ambiguous.exit_code == 1
    assert "ambiguous_id" in ambiguous.output and "matches 3 records" in ambiguous.output
    assert all(short(v) in ambiguous.output for v in ids.values())
    too_short = _invoke(settings, "show", "ab")
    assert too_short.exit_code == 1 and "too short" in too_short.output
    not_hex = _invoke(settings, "show", "zz_%zz")
    assert not_hex.exit_code == 1 and "only hex digits" in not_hex.output


def test_list_json_is_a_summary_and_full_is_the_document(
    populated: tuple[Settings, dict[str, str]],
) -> None:
    settings, ids = populated
    result = _invoke(settings, "list", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert {line["id"] for line in lines} == set(ids.values())
    by_id = {line["id"]: line for line in lines}
    member = by_id[ids["readme.md"]]
    assert member["short_id"] == short(ids["readme.md"]) and member["parents"] == 1
    assert member["name"] == "readme.md" and "traits" not in member
    full = [
        json.loads(line)
        for line in _invoke(settings, "list", "--json", "--full").output.splitlines()
    ]
    assert {d["id"] for d in full} == set(ids.values()) and all("traits" in d for d in full)
    grouped = _invoke(settings, "list", "--json", "--group", "ARCHIVE").output.splitlines()
    assert [json.loads(line)["id"] for line in grouped] == [ids["zip"]]
    assert _invoke(settings, "list", "--json", "--entity-type", "person").output == ""


def test_model_label_and_entity_type_filters(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    objects = open_object_store(settings)
    with VoxelStore(settings, objects) as voxels:
        builder = VoxelBuilder(voxels.ancestor_ids)
        shoe = classified_event(
            objects, b"\x89PNG shoe", name="shoe.png", label="png", group="image"
        )
        inferred = extend(
            data_of(shoe, Classified),
            InferenceCompleted,
            inference=Inference(
                model="image_classifier",
                version="1",
                top_k=[LabelScore(label="Sneaker", score=0.9), LabelScore(label="Bag", score=0.1)],
                inference_ms=1.0,
            ),
        )
        shoe_id = voxels.put(
            builder.build(typed_event(INFERENCE_COMPLETED, inferred, parent=shoe))
        ).voxel.id
        text = classified_event(objects, b"Ada Lovelace wrote in London.", name="ada.txt")
        analysed = extend(
            data_of(text, Classified),
            NlpProcessed,
            nlp=NlpAnalysis(
                doc_id="d",
                lang="en",
                confidence=0.9,
                entities=[
                    Entity(text="Ada Lovelace", start=0, end=12, label="PERSON"),
                    Entity(text="London", start=22, end=28, label="GPE"),
                ],
            ),
        )
        ada_id = voxels.put(
            builder.build(typed_event(NLP_PROCESSED, analysed, parent=text))
        ).voxel.id

    def listed(*args: str) -> list[str]:
        result = _invoke(settings, "list", "--json", *args)
        assert result.exit_code == 0, result.output
        return [json.loads(line)["id"] for line in result.output.splitlines()]

    assert listed("--model-label", "sneaker") == [shoe_id]  # the top label, any case
    assert listed("--model-label", "bag") == []  # not the top label
    assert listed("--entity-type", "gpe") == [ada_id]
    assert listed("--text", "lovelace", "--entity-type", "PERSON") == [ada_id]
    assert listed("--text", "lovelace", "--entity-type", "ORG") == []
    (brief,) = [
        json.loads(line)
        for line in _invoke(settings, "list", "--json", "--label", "TXT").output.splitlines()
    ]
    assert brief["nlp"]["entity_labels"] == {"PERSON": 1, "GPE": 1}
