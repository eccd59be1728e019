"""The ``nlp`` stage through the real pipeline engine: events in, processed events or DLQ out."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from thunderline import testing as kit
from thunderline.config import Settings
from thunderline.events import DLQ_EXTRACT, DLQ_NLP, EXTRACT_COMPLETED, NLP_PROCESSED, CloudEvent
from thunderline.extract.stage import ExtractStage
from thunderline.nlp.errors import NlpModelMissingError
from thunderline.nlp.stage import NlpStage
from thunderline.objects.local import LocalObjectStore


def classified(store: LocalObjectStore, data: bytes, label: str = "txt") -> CloudEvent:
    return kit.classified(
        store, data, label, name=f"doc.{label}", source="test://nlp", route=["extract", "nlp"]
    )


async def run_stage(
    settings: Settings, events: list[CloudEvent], **stage_kw: Any
) -> list[CloudEvent]:
    store = LocalObjectStore(settings.home / "objects")
    stages = [ExtractStage(settings, store), NlpStage(settings, store, **stage_kw)]
    return await kit.run_stages(stages, events, timeout_s=120)


@pytest.fixture
def store(settings: Settings) -> LocalObjectStore:
    return LocalObjectStore(settings.home / "objects")


def by_name(out: list[CloudEvent]) -> dict[str, CloudEvent]:
    result: dict[str, CloudEvent] = {}
    for event in out:
        data = event.data if "original" not in event.data else event.data["original"]["data"]
        result[data["artifact"]["sha256"]] = event
    return result


async def test_robustness_documents_through_the_pipeline(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(nlp_max_text_bytes=1_000_000)
    store = LocalObjectStore(settings.home / "objects")
    sentence = "Officials in Geneva announced a new climate agreement on Tuesday. "
    inputs = {
        "cafe": "Café français à Montréal. Jean Dupont vit à Paris.".encode(),
        "10kb": (sentence * 200).encode()[:10_240],
        "german": b"Die Bundesregierung hat heute in Berlin ein neues Gesetz beschlossen.",
        "invalid": b"Caf\xc3\xa9 in London \xff\xfe\xfd was open on Sunday.",
        "empty": b"",
        "emoji": "😀🎉🚀🔥".encode(),
        "2mb": b"y" * 2_000_000,
    }
    events = {name: classified(store, data) for name, data in inputs.items()}
    out = await run_stage(settings, list(events.values()))
    assert len(out) == len(inputs)
    found = by_name(out)
    nlp: dict[str, dict[str, Any]] = {}
    for name, event in events.items():
        result = found[event.data["artifact"]["sha256"]]
        if name == "empty":  # no text: the extract stage takes nlp off the route, with a note
            assert result.type == EXTRACT_COMPLETED and result.data["route"] == []
            assert "no text" in result.data["notes"][0]["note"]
            continue
        assert result.type == NLP_PROCESSED, (name, result.data.get("reason"))
        assert result.correlationid == event.correlationid
        assert result.data["route"] == []
        assert result.data["classification"]["label"] == "txt"
        nlp[name] = result.data["nlp"]
        assert nlp[name]["version"] == "1.1" and nlp[name]["doc_id"] == result.causationid
    # French text, English pipeline: no entities (the English model's guesses would be noise)
    assert nlp["cafe"]["lang"] == "fr" and nlp["cafe"]["entities"] == []
    assert nlp["cafe"]["extraction"]["encoding"] == "utf-8"
    assert nlp["10kb"]["extraction"]["chars"] == 10_240 and len(nlp["10kb"]["sentences"]) > 100
    assert nlp["german"]["lang"] == "de" and nlp["german"]["confidence"] < 0.3
    # English pipeline, German text: sentences and language, no entities (they would be noise)
    assert nlp["german"]["entities"] == [] and nlp["german"]["sentences"]
    assert "de" in nlp["german"]["entities_skipped"]
    assert nlp["10kb"]["entities"] and nlp["10kb"].get("entities_skipped") is None
    assert nlp["invalid"]["extraction"]["encoding"] == "utf-8"
    assert "London" in [e["text"] for e in nlp["invalid"]["entities"]]
    assert nlp["emoji"]["confidence"] == 0.0
    assert nlp["2mb"]["extraction"]["truncated"] is True
    assert nlp["2mb"]["chars"] == 1_000_000


def _prose(size: int) -> str:
    """Varied English prose with people, places, organisations and dates, in paragraphs."""
    people = ["Maria Garcia", "John Smith", "Aiko Tanaka", "Olu Adeyemi", "Lena Novak"]
    places = ["Madrid", "Chicago", "Osaka", "Lagos", "Prague", "Toronto", "Lima"]
    orgs = ["the United Nations", "Google", "the World Bank", "Siemens", "NASA"]
    months = ["January", "March", "June", "September", "November"]
    parts: list[str] = []
    total = 0
    i = 0
    while total < size:
        p, c, o, m = people[i % 5], places[i % 7], orgs[i % 5], months[i % 4]
        para = (
            f"In {m} {1990 + i % 30}, {p} travelled to {c} to meet officials of {o}. "
            f"The talks lasted {i % 9 + 2} days and ended with a shared statement. "
            f"Reporters from {places[(i + 3) % 7]} asked about the budget of {o}.\n\n"
        )
        parts.append(para)
        total += len(para)
        i += 1
    return "".join(parts)[:size]


@pytest.mark.slow
async def test_one_megabyte_text_completes_with_offsets_into_the_original(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    store = LocalObjectStore(settings.home / "objects")
    text = _prose(1_000_000)
    event = classified(store, text.encode())
    out = await run_stage(settings, [event])
    assert [e.type for e in out] == [NLP_PROCESSED], out[0].data.get("reason")
    nlp = out[0].data["nlp"]
    assert nlp["chars"] == len(text) == 1_000_000 and nlp["truncated"] is False
    assert nlp["chunks"] >= 1_000_000 // settings.nlp.chunk_chars
    assert len(nlp["entities"]) > 20_000
    for entity in nlp["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]
    for sentence in nlp["sentences"]:
        assert text[sentence["start"] : sentence["end"]] == sentence["text"]


async def test_pdf_html_rtf_markdown(
    settings: Settings, store: LocalObjectStore, peer_data: Path
) -> None:
    files = {
        "pdf": peer_data / "basic/pdf/magika_test.pdf",
        "rtf": peer_data / "basic/rtf/magika_test.rtf",
        "markdown": peer_data / "basic/markdown/README.md",
    }
    events = [classified(store, path.read_bytes(), label) for label, path in files.items()]
    html = b"<html><head><script>var hidden = 1;</script></head><body><h1>News</h1>" + (
        b"<p>Tim Cook visited <b>Tokyo</b> in March.</p></body></html>"
    )
    events.append(classified(store, html, "html"))
    out = await run_stage(settings, events)
    assert {e.type for e in out} == {NLP_PROCESSED}
    methods = {e.data["classification"]["label"]: e.data["nlp"] for e in out}
    assert methods["pdf"]["extraction"]["method"] == "pdf"
    assert methods["pdf"]["extraction"]["pages"] == 1
    assert "Magika" in " ".join(s["text"] for s in methods["pdf"]["sentences"])
    assert methods["rtf"]["extraction"]["method"] == "rtf"
    assert any(e["text"] == "Magika" for e in methods["rtf"]["entities"])
    assert methods["html"]["extraction"]["method"] == "html"
    assert {e["text"] for e in methods["html"]["entities"]} >= {"Tim Cook", "Tokyo"}
    assert "hidden" not in " ".join(s["text"] for s in methods["html"]["sentences"])
    assert methods["markdown"]["extraction"]["method"] == "markdown"


@pytest.mark.parametrize("marker", ["@@HANG@@", "@@SPIN@@"])
async def test_hung_worker_is_dead_lettered_with_reason_timeout(
    make_settings: Callable[..., Settings], fault_command: list[str], marker: str
) -> None:
    # a blocked worker (no CPU used) is caught by the wall backstop, a spinning one by its
    # CPU budget: both documents are dead-lettered as timeouts
    settings = make_settings(
        spacy_workers=1, nlp_doc_timeout_s=0.2, nlp_doc_wall_timeout_s=0.4, max_attempts=2
    )
    store = LocalObjectStore(settings.home / "objects")
    hung = classified(store, f"This document will {marker} the worker.".encode())
    fine = classified(store, b"Meanwhile Lisbon stays sunny.")
    out = await run_stage(settings, [hung, fine], worker_command=fault_command)
    found = by_name(out)
    dlq = found[hung.data["artifact"]["sha256"]]
    assert dlq.type == DLQ_NLP
    assert dlq.data["reason"] == "timeout"
    assert dlq.data["error"]["type"] == "NlpTimeoutError"
    assert dlq.data["attempts"] == 2  # the engine tried it twice (the pool does not retry)
    assert dlq.data["original"]["causationid"] == hung.id  # the extract stage came between
    assert found[fine.data["artifact"]["sha256"]].type == NLP_PROCESSED


async def test_nlp_max_retries_sets_how_often_a_crashing_document_is_tried(
    make_settings: Callable[..., Settings],
    fault_command: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # TL_MAX_ATTEMPTS alone would try the document 4 times; TL_NLP_MAX_RETRIES=1 (the name
    # of issue 21, read from the environment) makes the engine try the nlp stage twice
    monkeypatch.setenv("TL_NLP_MAX_RETRIES", "1")
    settings = make_settings(spacy_workers=1, max_attempts=4, retry_backoff_s=0.01)
    store = LocalObjectStore(settings.home / "objects")
    crash = classified(store, b"This document will @@CRASH@@ its worker.")
    stage = NlpStage(settings, store, worker_command=fault_command)
    async with kit.StageRunner([ExtractStage(settings, store), stage]) as runner:
        await runner.submit(crash)
        out = await runner.drain(60)
    assert len(out) == 1 and out[0].type == DLQ_NLP
    assert (out[0].data["reason"], out[0].data["attempts"]) == ("crash", 2)
    assert stage.pool.stats.restarts["crash"] == 2  # one crash per attempt, no more


async def test_malformed_worker_output_is_dead_lettered_with_parse(
    make_settings: Callable[..., Settings], fault_command: list[str]
) -> None:
    settings = make_settings(spacy_workers=1)
    store = LocalObjectStore(settings.home / "objects")
    bad = classified(store, b"Answer with @@GARBAGE@@ please.")
    out = await run_stage(settings, [bad], worker_command=fault_command)
    assert len(out) == 1 and out[0].type == DLQ_NLP
    assert out[0].data["reason"] == "parse"
    assert "not JSON" in out[0].data["error"]["message"]


async def test_circuit_open_and_extraction_failures_are_dead_lettered(
    make_settings: Callable[..., Settings], fault_command: list[str]
) -> None:
    settings = make_settings(
        spacy_workers=1, max_attempts=1, nlp_breaker_failures=1, nlp_breaker_cooldown_s=60
    )
    store = LocalObjectStore(settings.home / "objects")
    broken_pdf = classified(store, b"%PDF-1.7\nthis is not really a PDF", "pdf")
    later = classified(store, b"Refused while the breaker is open.")
    # one crash (no retries) opens the breaker; the next document is refused
    stage = NlpStage(settings, store, worker_command=fault_command)
    async with kit.StageRunner([ExtractStage(settings, store), stage]) as runner:
        await runner.submit(classified(store, b"@@CRASH@@ again"))
        await runner.drain(60)
        await runner.submit(later, broken_pdf)
        got = await runner.drain(60)
    reasons = sorted((e.data["reason"], e.type) for e in got)
    # the broken PDF is dead-lettered by the extract stage, before NLP
    assert reasons == [("circuit_open", DLQ_NLP), ("crash", DLQ_NLP), ("extraction", DLQ_EXTRACT)]


async def test_worker_killed_during_a_run_loses_no_document(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(spacy_workers=2)
    store = LocalObjectStore(settings.home / "objects")
    text = "Ships sailed from Rotterdam to Singapore carrying grain. "
    events = [classified(store, (f"Doc {i}. " + text * 40).encode()) for i in range(16)]
    stage = NlpStage(settings, store)
    async with kit.StageRunner([ExtractStage(settings, store), stage]) as runner:
        await runner.submit(*events)
        for _ in range(500):
            if stage.pool.busy_pids():
                break
            await asyncio.sleep(0.01)
        os.kill(stage.pool.busy_pids()[0], signal.SIGKILL)
        out = await runner.drain(120)
    assert len(out) == 16
    assert {e.type for e in out} == {NLP_PROCESSED}
    assert stage.pool.stats.restarts["crash"] == 1


async def test_missing_pipeline_fails_setup_with_install_hint(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(spacy_model="xx_missing_pipeline")
    stage = NlpStage(settings, LocalObjectStore(settings.home / "objects"))
    with pytest.raises(NlpModelMissingError, match="pip install xx-missing-pipeline"):
        await stage.setup()
