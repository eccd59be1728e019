"""The wiring table: which stages are on, their options from settings, the CPU budget, the
bus and store factories, the ingest event, and a Runtime run end to end (ML switched off)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thunderline.bus.factory import open_bus
from thunderline.bus.memory import MemoryBus
from thunderline.classify import ClassifyStage, iter_candidates
from thunderline.cli import app
from thunderline.config import Settings
from thunderline.errors import ConfigError
from thunderline.eventdata import IngestRequest, data_of
from thunderline.events import INGEST_RECEIVED, VOXEL_CREATED, CloudEvent
from thunderline.extract.stage import ExtractStage
from thunderline.journal import Journal
from thunderline.ml.stage import InferStage
from thunderline.nlp.stage import NlpStage
from thunderline.objects.factory import open_object_store
from thunderline.runtime import (
    WIRING,
    Runtime,
    build_stages,
    cpu_budget,
    enabled_stage_names,
    ingest_event,
)
from thunderline.voxel.stage import PackageStage


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, ["classify", "extract", "nlp", "package"]),
        ({"onnx_enabled": True}, ["classify", "extract", "nlp", "infer", "package"]),
        ({"enable_ml_pipeline": False, "onnx_enabled": True}, ["classify", "package"]),
    ],
)
def test_which_stages_are_on_is_decided_by_the_table(
    make_settings: Callable[..., Settings], overrides: dict[str, object], expected: list[str]
) -> None:
    settings = make_settings(**overrides)
    assert enabled_stage_names(settings) == expected
    stages = build_stages(settings, open_object_store(settings))
    assert [s.name for s in stages] == expected
    classify = stages[0]
    assert isinstance(classify, ClassifyStage)
    assert classify.available == set(expected[1:])  # routes keep only stages that are on


def test_the_table_names_every_stage_class_once() -> None:
    assert [(s.name, s.cls) for s in WIRING] == [
        ("classify", ClassifyStage),
        ("extract", ExtractStage),
        ("nlp", NlpStage),
        ("infer", InferStage),
        ("package", PackageStage),
    ]


def test_stage_options_come_from_settings(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        onnx_enabled=True,
        classify_timeout_s=7,
        nlp_concurrency=3,
        nlp_batch_size=5,
        infer_concurrency=4,
        onnx_max_batch_size=6,
        package_batch_size=9,
        package_concurrency=2,
        max_attempts=5,
    )
    by_name = {s.name: s.options for s in build_stages(settings, open_object_store(settings))}
    assert by_name["classify"].timeout_s == 7
    assert (by_name["nlp"].batch_size, by_name["nlp"].concurrency) == (5, 3)
    assert (by_name["infer"].batch_size, by_name["infer"].concurrency) == (6, 4)
    assert (by_name["package"].batch_size, by_name["package"].concurrency) == (9, 2)
    assert by_name["package"].timeout_s == settings.stage_timeout_s
    # the nlp timeout covers the pool's retries unless set
    assert by_name["nlp"].timeout_s > settings.stage_timeout_s
    assert {o.max_attempts for o in by_name.values()} == {5}
    pinned = make_settings(nlp_timeout_s=12)
    assert NlpStage.options_from(pinned).timeout_s == 12


def test_cpu_budget_follows_the_stages_that_are_on(
    make_settings: Callable[..., Settings],
) -> None:
    off = cpu_budget(make_settings(enable_ml_pipeline=False))
    assert (off.magika_calls, off.spacy_processes, off.onnx_threads) == (0, 0, 0)
    on = cpu_budget(make_settings(onnx_enabled=True, spacy_workers=3, onnx_threadpool=64))
    assert on.magika_calls == 1 and on.spacy_processes == 3
    assert on.onnx_threads == min(64, os.cpu_count() or 1)


def test_settings_sections_hold_every_setting_once(settings: Settings) -> None:
    sections = settings.sections()
    names = [name for values in sections.values() for name in values]
    assert sorted(names) == sorted(Settings.model_fields)
    assert "package_batch_size" in sections["package"] and "bus_url" in sections["backends"]


def test_open_bus_refuses_unknown_urls(make_settings: Callable[..., Settings]) -> None:
    assert isinstance(open_bus(make_settings()), MemoryBus)
    with pytest.raises(ConfigError, match="TL_BUS_URL: 'kafka://x' has scheme 'kafka'"):
        make_settings(bus_url="kafka://x")  # refused with the settings, before any bus
    unchecked = make_settings().model_copy(update={"bus_url": "kafka://x"})
    with pytest.raises(ConfigError, match="unsupported bus URL 'kafka://x'"):
        open_bus(unchecked)


def test_ingest_event_is_a_typed_request_for_any_file_name(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9 \xff.txt")  # not UTF-8: surrogate escapes
    path = tmp_path / name
    path.write_bytes(b"hello")
    [candidate] = list(iter_candidates([tmp_path]))
    event = ingest_event(candidate)
    assert event.type == INGEST_RECEIVED and event.id == event.correlationid
    request = data_of(CloudEvent.from_dict(event.to_dict()), IngestRequest)
    assert request.artifact.name == name and request.artifact.path == str(path)
    assert request.route == ["classify"]


async def test_runtime_runs_files_to_voxels_and_journals_them(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.txt").write_text(f"file {i}")
    settings = make_settings(enable_ml_pipeline=False)
    ends: list[CloudEvent] = []
    async with Runtime(settings, on_terminal=ends.append) as runtime:
        assert runtime.stage_names == ["classify", "package"]
        assert await runtime.submit_files(iter_candidates([folder])) == 3
        await runtime.wait_idle(60)
    assert [e.type for e in ends] == [VOXEL_CREATED] * 3
    journalled = list(Journal(settings.home).iter_events())
    assert {e.type for e in journalled} == {
        INGEST_RECEIVED,
        "system.ingest.classified",
        VOXEL_CREATED,
    }


def test_stages_show_prints_the_table_and_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TL_NLP_CONCURRENCY", "3")
    result = CliRunner().invoke(app, ["stages", "show"])
    assert result.exit_code == 0, result.output
    assert "classify" in result.stdout and "package" in result.stdout
    assert "CPU budget" in result.stdout and "spaCy worker processes" in result.stdout
