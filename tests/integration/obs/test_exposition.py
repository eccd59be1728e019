"""Exposition after a real end-to-end run with bad inputs: the HTTP server, the ASGI app,
`promtool check metrics`, and bounded labels on every metric."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.obs._pipeline import (
    build_inputs,
    find_tool,
    journal_identities,
    run_pipeline,
    run_settings,
)
from typer.testing import CliRunner

from thunderline.cli import app
from thunderline.config import Settings
from thunderline.errors import ConfigError
from thunderline.obs import metrics_app, start_metrics_server, telemetry

#: Label names a Thunderline metric may carry (all of bounded vocabularies).
ALLOWED_LABELS = {
    "stage",
    "outcome",
    "reason",
    "type",
    "topic",
    "group",
    "model",
    "cause",
    "le",
    "method",
    "route",
    "status",
    "extractor",  # an extractor name of thunderline.extract.registry (a bounded set)
    "policy",  # TL_DUPLICATE_POLICY: link, flag, reject, reprocess
}
#: ``route`` of the HTTP metrics: a route template of the app (or ``unmatched``), never a path.
ROUTE_TEMPLATE = re.compile(r"unmatched|/[a-z0-9_/{}.-]*")
MAX_LABELS_PER_METRIC = 10
MAX_COMBINATIONS = 1000
#: A CloudEvents type of the catalogue (events.py): dotted lower-case words.
EVENT_TYPE = re.compile(r"[a-z]+(\.[a-z_]+)+")
UNBOUNDED = {
    "uuid": re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I),
    "long hex (hash or id)": re.compile(r"[0-9a-f]{12,}", re.I),
    "path": re.compile(r"[/\\]"),
    "free text (whitespace)": re.compile(r"\s"),
    "file name": re.compile(r"\.[A-Za-z0-9]{1,5}$"),
}


Combination = tuple[str, tuple[tuple[str, str], ...]]


def combinations_of(text: str) -> set[Combination]:
    """Every (family, label set without ``le``) of an exposition."""
    return {
        (family.name, tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le")))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def label_problems(
    text: str, identities: set[str], before: set[Combination] | None = None
) -> list[str]:
    """Every violation of the label rules in an exposition (empty when all is well).

    ``before``: the combinations the process had already (earlier tests in the same process);
    the bound applies to what this run added.
    """
    problems: list[str] = []
    combinations: set[Combination] = set()
    for family in text_string_to_metric_families(text):
        names: set[str] = set()
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            names |= set(sample.labels)
            combinations.add((family.name, tuple(sorted(labels.items()))))
            for key, value in sample.labels.items():
                if key == "le":
                    continue
                if key == "type" and not EVENT_TYPE.fullmatch(value):
                    problems.append(f"{family.name}{{type={value!r}}} is not an event type")
                if key == "route":
                    if not ROUTE_TEMPLATE.fullmatch(value) or UNBOUNDED["uuid"].search(value):
                        problems.append(f"{family.name}{{route={value!r}}} is not a template")
                    continue  # a template looks like a path by nature
                for what, pattern in UNBOUNDED.items():
                    if key == "type" and what == "file name":
                        continue  # CloudEvents types are dotted names (checked above)
                    if pattern.search(value):
                        problems.append(f"{family.name}{{{key}={value!r}}} looks like a {what}")
                leaked = [s for s in identities if s in value or value == s]
                if leaked:
                    problems.append(f"{family.name}{{{key}={value!r}}} carries {leaked[0]!r}")
        if not family.name.startswith("thunderline"):
            continue
        if len(names) > MAX_LABELS_PER_METRIC:
            problems.append(f"{family.name} has {len(names)} labels")
        if names - ALLOWED_LABELS:
            problems.append(f"{family.name} has unexpected labels {sorted(names - ALLOWED_LABELS)}")
    added = combinations - (before or set())
    if len(added) > MAX_COMBINATIONS:
        by_family = Counter(name for name, _ in added).most_common(5)
        problems.append(
            f"{len(added)} label combinations added by the run (max {MAX_COMBINATIONS}): "
            f"{by_family}"
        )
    return problems


def _asgi_get(path: str = "/metrics") -> httpx.Response:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=metrics_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://tl") as client:
            return await client.get(path)

    return asyncio.run(get())


def _scrape() -> str:
    """The process's exposition, read over HTTP from a metrics server started for it."""
    server = start_metrics_server(0)
    try:
        with urllib.request.urlopen(server.url, timeout=10) as response:
            return str(response.read().decode("utf-8"))
    finally:
        server.close()


def test_metrics_after_a_real_run_are_valid_and_bounded(
    peer_data: Path, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    promtool = find_tool("promtool")
    settings = run_settings(make_settings)
    inputs = build_inputs(peer_data, tmp_path / "in put", bad_every=6)
    before = combinations_of(_scrape())
    terminal = asyncio.run(run_pipeline(settings, inputs.good + inputs.bad))
    assert sum(e.is_dlq for e in terminal) >= len(inputs.bad)
    assert any(not e.is_dlq for e in terminal)

    server = start_metrics_server(0)
    try:
        with urllib.request.urlopen(server.url, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode("utf-8")
    finally:
        server.close()

    # the run shows up: every stage, DLQ by reason, latency histograms of every step
    for needle in (
        'thunderline_stage_messages_total{outcome="ok",stage="classify"}',
        'thunderline_dlq_total{reason="path_escape",stage="classify"}',
        'thunderline_dlq_total{reason="too_large",stage="classify"}',
        'thunderline_dlq_total{reason="not_found",stage="classify"}',
        'thunderline_ingest_completed_total{group="text",outcome="ok"}',
        "thunderline_magika_classify_duration_seconds_bucket",
        "thunderline_spacy_process_duration_seconds_bucket",
        "thunderline_onnx_infer_duration_seconds_bucket",
        "thunderline_voxel_build_duration_seconds_bucket",
        "thunderline_spacy_workers_alive",
    ):
        assert needle in text, needle

    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

    identities = journal_identities(settings) | inputs.secrets
    assert len(identities) > 50  # the check below really compares against the run's ids
    assert label_problems(text, identities, before) == []

    # the ASGI app the HTTP service mounts serves the same families
    response = _asgi_get()
    assert response.status_code == 200
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert families == {f.name for f in text_string_to_metric_families(text)}


def test_the_label_check_catches_unbounded_values() -> None:
    text = (
        "# HELP thunderline_x_total x\n# TYPE thunderline_x_total counter\n"
        'thunderline_x_total{stage="classify",file="/tmp/a b.txt"} 1\n'
        'thunderline_x_total{stage="0191e9a4-1c2b-7a3d-8e4f-5a6b7c8d9e0f"} 1\n'
    )
    problems = label_problems(text, {"a b.txt"})
    assert any("path" in p for p in problems)
    assert any("uuid" in p for p in problems)
    assert any("unexpected labels ['file']" in p for p in problems)
    assert any("carries 'a b.txt'" in p for p in problems)


def test_ingest_serves_metrics_while_it_runs(
    peer_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ingest --metrics-port P`: /metrics answers during the run; the port is closed after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("basic/csv", "basic/json"):
        source = next(p for p in sorted((peer_data / name).iterdir()) if p.is_file())
        shutil.copy(source, folder / source.name)
    monkeypatch.setenv("TL_HOME", str(tmp_path / "home"))
    scraped: list[str] = []

    def scrape(name: tuple[str, ...], _m: object, _meta: object) -> None:
        if name[-1] == "stop" and not scraped:
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                scraped.append(response.read().decode("utf-8"))

    telemetry.attach("test.scrape", scrape)
    try:
        result = CliRunner().invoke(app, ["ingest", str(folder), "--metrics-port", str(port)])
    finally:
        telemetry.detach("test.scrape")
    assert result.exit_code == 0, result.output
    assert scraped and "thunderline_stage_batch_duration_seconds_bucket" in scraped[0]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_a_port_in_use_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            start_metrics_server(port)
        monkeypatch.setenv("TL_HOME", str(tmp_path / "home"))
        (tmp_path / "a.txt").write_text("hello\n", encoding="utf-8")
        result = CliRunner().invoke(
            app, ["ingest", str(tmp_path / "a.txt"), "--metrics-port", str(port)]
        )
    assert result.exit_code == 1
    assert "cannot serve metrics" in result.output
