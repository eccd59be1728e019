"""The worker program over its real JSON-lines protocol (a real spaCy pipeline, no fakes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from thunderline.nlp.process import default_worker_command
from thunderline.nlp.result import (
    NlpErrorReply,
    NlpResult,
    batch_line,
    parse_reply,
    request_item,
    request_line,
    supports_batches,
)
from thunderline.nlp.worker import EXIT_MODEL_MISSING

_pool = ThreadPoolExecutor(4)


class WorkerProc:
    """A worker started the way the pool starts it, driven line by line."""

    def __init__(self, *args: str, module: bool = False) -> None:
        base = (
            [sys.executable, "-m", "thunderline.nlp.worker"] if module else default_worker_command()
        )
        self.proc = subprocess.Popen(
            [*base, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.stdout = self.proc.stdout

    def send(self, raw: bytes) -> None:
        self.stdin.write(raw)
        self.stdin.flush()

    def read_line(self, timeout: float = 30.0) -> bytes:
        return _pool.submit(self.stdout.readline).result(timeout)

    def ask(self, doc_id: str, text: str, lang: str | None = None) -> NlpResult | NlpErrorReply:
        self.send(request_line(doc_id, text, lang))
        return parse_reply(self.read_line())

    def wait_ready(self) -> dict[str, Any]:
        hello: dict[str, Any] = json.loads(self.read_line(120))
        assert hello["ready"] is True
        return hello

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerProc]:
    proc = WorkerProc("--ready")
    proc.wait_ready()
    yield proc
    proc.stop()


def _result(reply: NlpResult | NlpErrorReply) -> NlpResult:
    assert isinstance(reply, NlpResult), reply
    return reply


# ---- robustness inputs (roadmap 5.4) --------------------------------------------------------
def test_accented_utf8(worker: WorkerProc) -> None:
    text = "Café français. Marie Curie worked in Paris with Pierre."
    result = _result(worker.ask("cafe", text))
    assert result.doc_id == "cafe"
    assert text[result.entities[0].start : result.entities[0].end] == result.entities[0].text
    assert any(e.text == "Paris" and e.label == "GPE" for e in result.entities)
    assert result.sentences[0].text == "Café français."
    assert result.lang == "en" and result.confidence > 0.5


def test_ten_kilobyte_document(worker: WorkerProc) -> None:
    sentence = "The European Commission met in Brussels on Monday to discuss the budget. "
    text = (sentence * (10_240 // len(sentence) + 1))[:10_240]
    result = _result(worker.ask("10k", text))
    assert result.chars == 10_240
    assert len(result.sentences) >= 130
    assert sum(e.text == "Brussels" for e in result.entities) >= 100


def test_unsupported_language_falls_back_to_english(worker: WorkerProc) -> None:
    german = "Der Hund läuft schnell über die große Wiese und bellt laut, weil er spielen will."
    english = (
        "The dog runs quickly across the big meadow and barks loudly because it wants to play."
    )
    de = _result(worker.ask("de", german))
    en = _result(worker.ask("en", english))
    assert de.lang == "de" and de.pipeline_lang == "en"
    assert de.lang_score > 0.9
    assert de.confidence < 0.3 < en.confidence
    assert de.sentences  # processed by the English pipeline anyway


def test_invalid_utf8_and_lone_surrogates(worker: WorkerProc) -> None:
    raw = b'{"version":"1.0","doc_id":"bad","text":"caf\\ud800 ok \xff\xfe end"}\n'
    reply = parse_reply(worker.send(raw) or worker.read_line())
    assert isinstance(reply, NlpErrorReply) and reply.error.kind == "parse"
    result = _result(worker.ask("sur", "caf\ud800 and more text"))
    assert result.chars == len("caf\ud800 and more text")


def test_empty_document(worker: WorkerProc) -> None:
    result = _result(worker.ask("empty", ""))
    assert result.lang == "und" and result.confidence == 0.0
    assert result.entities == [] and result.sentences == [] and result.chars == 0


def test_emoji_only(worker: WorkerProc) -> None:
    text = "😀🎉🚀 🔥🔥"
    result = _result(worker.ask("emoji", text))
    assert result.lang == "und" and result.confidence == 0.0  # no language: do not trust it
    assert result.chars == len(text)
    for span in [*result.entities, *result.sentences]:  # offsets count characters, not bytes
        assert text[span.start : span.end] == span.text


def test_two_megabyte_single_token_is_truncated(worker: WorkerProc) -> None:
    started = time.perf_counter()
    result = _result(worker.ask("2mb", "x" * 2_000_000))
    assert result.truncated is True
    assert result.chars == 1_000_000
    assert time.perf_counter() - started < 10


def test_caller_language_hint_is_used(worker: WorkerProc) -> None:
    result = _result(worker.ask("hint", "Bonjour tout le monde", lang="fr"))
    assert result.lang == "fr" and result.lang_score == 1.0
    assert result.confidence == pytest.approx(0.25)


def test_malformed_requests_get_parse_errors_and_the_worker_goes_on(worker: WorkerProc) -> None:
    for raw in (b"not json\n", b"[1, 2]\n", b'{"doc_id": 5, "text": "x"}\n'):
        worker.send(raw)
        reply = parse_reply(worker.read_line())
        assert isinstance(reply, NlpErrorReply) and reply.error.kind == "parse"
    worker.send(b'{"version":"2.0","doc_id":"v2","text":"x"}\n')
    reply = parse_reply(worker.read_line())
    assert isinstance(reply, NlpErrorReply) and reply.doc_id == "v2"
    assert _result(worker.ask("after", "Still alive in Berlin.")).sentences


def test_exactly_one_json_line_per_document(worker: WorkerProc) -> None:
    docs = [f"Document number {i} mentions Tokyo and Google." for i in range(20)]
    worker.send(b"".join(request_line(f"d{i}", text) for i, text in enumerate(docs)))
    ids = [_result(parse_reply(worker.read_line())).doc_id for _ in docs]
    assert ids == [f"d{i}" for i in range(20)]


def test_batch_line_answers_each_document_in_order_one_bad_item_alone(worker: WorkerProc) -> None:
    items = [request_item(f"b{i}", f"Batch item {i} is about Nairobi.") for i in range(4)]
    items.insert(2, b'{"doc_id": "bad", "text": 7}')
    worker.send(batch_line(items))
    replies = [parse_reply(worker.read_line()) for _ in range(5)]
    assert [r.doc_id for r in replies] == ["b0", "b1", "bad", "b2", "b3"]
    assert isinstance(replies[2], NlpErrorReply) and replies[2].error.kind == "parse"
    good = [_result(r) for i, r in enumerate(replies) if i != 2]
    assert all(r.batch_docs == 4 for r in good)
    assert all(any(e.text == "Nairobi" for e in r.entities) for r in good)
    single = _result(worker.ask("one", "Alone in Quito."))
    assert single.batch_docs == 1 and single.version == "1.1"


def test_ready_line_announces_the_batch_protocol() -> None:
    proc = WorkerProc("--ready")
    try:
        assert supports_batches(proc.wait_ready()["version"])
    finally:
        proc.stop()
    assert not supports_batches("1.0") and not supports_batches("2.1")
    assert not supports_batches(None)


# ---- timeouts, signals, pipes -----------------------------------------------------------------
def test_batch_timeout_redoes_documents_alone_so_only_the_slow_one_times_out() -> None:
    proc = WorkerProc("--ready", "--doc-timeout", "1.0")
    try:
        proc.wait_ready()
        slow = "The quick brown fox jumps over the lazy dog near the river bank. " * 1600
        items = [request_item("q1", "Quick one in Oslo."), request_item("slow", slow)]
        items.append(request_item("q2", "Quick two in Bergen."))
        proc.send(batch_line(items))
        replies = [parse_reply(proc.read_line()) for _ in range(3)]
        assert [r.doc_id for r in replies] == ["q1", "slow", "q2"]
        assert isinstance(replies[1], NlpErrorReply) and replies[1].error.kind == "timeout"
        assert isinstance(replies[0], NlpResult) and isinstance(replies[2], NlpResult)
    finally:
        proc.stop()


def test_worker_timeout_answers_and_keeps_serving() -> None:
    proc = WorkerProc("--ready", "--doc-timeout", "0.05")
    try:
        proc.wait_ready()
        slow = "The quick brown fox jumps over the lazy dog near the river bank. " * 400
        reply = proc.ask("slow", slow)
        assert isinstance(reply, NlpErrorReply)
        assert reply.error.kind == "timeout" and reply.doc_id == "slow"
        assert isinstance(proc.ask("fast", "Hi."), NlpResult)
    finally:
        proc.stop()


def test_sigterm_mid_document_finishes_it_and_exits_zero() -> None:
    proc = WorkerProc("--ready")
    try:
        proc.wait_ready()
        text = "Angela Merkel met Emmanuel Macron in Berlin to talk about energy. " * 500
        proc.send(request_line("long", text))
        time.sleep(0.3)  # the document takes ~1 s
        proc.proc.send_signal(signal.SIGTERM)
        reply = parse_reply(proc.read_line())
        assert isinstance(reply, NlpResult) and reply.doc_id == "long"
        assert len(reply.sentences) == 500
        assert proc.proc.wait(10) == 0
    finally:
        proc.stop()


def test_sigterm_while_idle_exits_zero() -> None:
    proc = WorkerProc("--ready")
    try:
        proc.wait_ready()
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(10) == 0
        assert proc.stdout.read() == b""
    finally:
        proc.stop()


def test_closed_stdin_exits_zero_and_stdout_has_only_protocol_lines() -> None:
    proc = WorkerProc("--ready", "--log-level", "INFO", module=True)
    try:
        proc.wait_ready()
        proc.send(request_line("one", "Paris is in France."))
        proc.stdin.close()
        assert proc.proc.wait(10) == 0
        rest = proc.stdout.read().splitlines()
        assert len(rest) == 1 and isinstance(parse_reply(rest[0]), NlpResult)
        assert proc.proc.stderr is not None
        assert b"exiting after 1 documents" in proc.proc.stderr.read()
    finally:
        proc.stop()


def test_broken_pipe_exits_cleanly() -> None:
    proc = WorkerProc("--ready")
    try:
        proc.wait_ready()
        proc.stdout.close()
        proc.send(request_line("lost", "Nobody reads this answer."))
        assert proc.proc.wait(10) == 0
        assert proc.proc.stderr is not None
        assert b"Traceback" not in proc.proc.stderr.read()
    finally:
        proc.stop()


def test_missing_pipeline_is_a_clear_start_up_error() -> None:
    done = subprocess.run(
        [*default_worker_command(), "--model", "no_such_spacy_pipeline"],
        input=b"",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_MODEL_MISSING
    assert done.stdout == b""
    assert b"pip install no-such-spacy-pipeline" in done.stderr


def test_worker_imports_no_engine_bus_settings_or_voxel_code(tmp_path: Path) -> None:
    command = default_worker_command()
    assert command[1:] == ["-m", "thunderline.nlp.worker"]
    probe = (
        "import sys, json, thunderline.nlp.worker\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('thunderline'))))\n"
    )
    done = subprocess.run([command[0], "-c", probe], capture_output=True, timeout=60, check=True)
    loaded = json.loads(done.stdout)
    assert "thunderline.nlp.worker" in loaded
    forbidden = ("thunderline.bus", "thunderline.flow", "thunderline.voxel", "thunderline.config")
    assert not [m for m in loaded if m.startswith(forbidden)], loaded
    assert os.path.basename(command[0]).startswith("python")
