"""Traces: one ingest gives one trace with a span per stage (SDK in-memory exporter), a failed
batch marks its span, and TL_OTLP_ENDPOINT really exports over OTLP/HTTP."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.integration.obs._pipeline import run_pipeline

from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.obs import telemetry, tracing
from thunderline.obs.command import observe


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.install(provider)
    try:
        yield memory
    finally:
        tracing.uninstall()
        provider.shutdown()


def test_one_ingest_is_one_trace_with_a_span_per_stage(
    exporter: InMemorySpanExporter,
    peer_data: Path,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
) -> None:
    text = next(p for p in sorted((peer_data / "basic/txt").iterdir()) if p.is_file())
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(text, folder / "doc.txt")
    settings = make_settings(spacy_workers=1)
    [end] = asyncio.run(run_pipeline(settings, [Candidate(folder / "doc.txt", folder)]))
    assert not end.is_dlq

    spans = exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == [
        "stage classify",
        "stage extract",
        "stage nlp",
        "stage package",
    ]
    trace_id, parent_id = tracing.trace_ids(end.correlationid)
    for span in spans:
        assert span.context is not None and span.context.trace_id == trace_id
        assert span.parent is not None and span.parent.span_id == parent_id
        assert span.attributes is not None
        assert span.attributes["thunderline.correlation_id"] == end.correlationid
        assert span.attributes["thunderline.batch.size"] == 1
        assert span.status.status_code is not StatusCode.ERROR
        assert span.end_time is not None and span.start_time is not None
        assert span.end_time >= span.start_time


def test_a_failed_batch_marks_its_span(
    exporter: InMemorySpanExporter, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "escape.txt").symlink_to(tmp_path / "elsewhere.txt")
    (tmp_path / "elsewhere.txt").write_text("outside the root\n", encoding="utf-8")
    [end] = asyncio.run(run_pipeline(make_settings(), [Candidate(folder / "escape.txt", folder)]))
    assert end.is_dlq
    [span] = exporter.get_finished_spans()
    assert span.name == "stage classify"
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["error"]
    assert span.events[0].attributes == {"thunderline.reason": "path_escape"}


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_otlp_endpoint_exports_spans_over_http(
    peer_data: Path, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = make_settings(otlp_endpoint=f"http://127.0.0.1:{server.server_port}")
        folder = tmp_path / "in"
        folder.mkdir()
        source = next(p for p in sorted((peer_data / "basic/csv").iterdir()) if p.is_file())
        shutil.copy(source, folder / "table.csv")
        with observe(settings) as observed:
            assert observed.tracing and observed.metrics is None
            [end] = asyncio.run(run_pipeline(settings, [Candidate(folder / "table.csv", folder)]))
        # leaving observe() flushed the batch processor and detached the handler
        assert tracing.HANDLER_ID not in telemetry._handlers
    finally:
        server.shutdown()
        server.server_close()
    assert not end.is_dlq
    assert _Collector.received, "no OTLP request arrived"
    path, content_type, body = _Collector.received[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    assert end.correlationid.encode() in body  # the span attribute travels in the protobuf


def test_tracing_is_off_without_an_endpoint(make_settings: Callable[..., Settings]) -> None:
    assert tracing.configure_tracing(make_settings()) is None
    assert tracing.HANDLER_ID not in telemetry._handlers
