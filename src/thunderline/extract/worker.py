"""The extraction worker program: ``python -m thunderline.extract.worker``.

One process extracts one file at a time, speaking JSON lines (protocol ``version`` 1):

- it writes ``{"type": "ready", "version": 1, "pid": N}`` once it is ready;
- each input line is a job ``{"id", "path", "extractor", "label", "mime", "max_text_bytes",
  "max_parts", "max_part_bytes", "max_ratio", "parts_dir", "ocr", "ocr_engine", "ocr_languages"}``;
- while it works it may write ``{"id", "type": "progress"}`` (at most every
  :data:`PROGRESS_EVERY_S`); the supervisor kills a worker that stays silent past the
  progress timeout;
- it answers ``{"id", "type": "result", "result": {...ExtractResult...}}`` or
  ``{"id", "type": "error", "reason", "error_type", "message"}``.

Its address space is capped with ``RLIMIT_AS`` (``--memory-mb``) before any parser is
imported: a file that needs more gets ``MemoryError``, answered with reason
``out_of_memory``, after which the worker exits (its heap may be fragmented or half-updated).
After a file, the native memory its parser freed is given back to the OS once the worker's
RSS has grown ``--trim-mb`` since its last trim (``TL_MALLOC_TRIM_MB``,
:mod:`thunderline.malloc`): glibc would otherwise keep each large file's high-water mark.
Standard output carries only the protocol: ``sys.stdout`` and file descriptor 1 are pointed at
standard error, so a library that prints cannot break a line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from thunderline.malloc import DEFAULT_MIN_GROWTH_MB, Trimmer

PROTOCOL_VERSION = 1
#: Least time between two progress lines.
PROGRESS_EVERY_S = 0.25
#: Exit status after a MemoryError (the supervisor reads it as ``out_of_memory``).
EXIT_OUT_OF_MEMORY = 3


def cap_memory(megabytes: int) -> None:
    """Cap the address space of this process (0: no cap)."""
    if megabytes <= 0:
        return
    limit = megabytes * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


class _Channel:
    """The protocol stream (the original standard output)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def send(self, message: dict[str, Any]) -> None:
        self.stream.write(json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.stream.flush()

    def send_result(self, job_id: Any, found: Any) -> None:
        """Answer with a result serialised by pydantic-core in one pass.

        No dict of it is built first; text pydantic cannot serialise (lone surrogates) takes the
        slow way.
        """
        from thunderline.extract.result import result_dict, result_json

        try:
            body = result_json(found)
        except ValueError:  # PydanticSerializationError
            self.send({"id": job_id, "type": "result", "result": result_dict(found)})
            return
        head = json.dumps(job_id, ensure_ascii=False)
        self.stream.write(f'{{"id":{head},"type":"result","result":{body}}}\n')
        self.stream.flush()


def _protocol_stream() -> TextIO:
    """Keep fd 1 for the protocol and point ``print`` and fd 1 at standard error."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass", buffering=1)


def handle(job: dict[str, Any], channel: _Channel) -> None:
    """Run one job and answer it (result or error)."""
    from thunderline.extract.base import ExtractContext
    from thunderline.extract.errors import ExtractionError
    from thunderline.extract.registry import by_name

    job_id = job.get("id")
    last = [0.0]

    def progress() -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            channel.send({"id": job_id, "type": "progress"})

    try:
        extractor = by_name(str(job["extractor"]))
        parts_dir = job.get("parts_dir")
        ctx = ExtractContext(
            label=str(job.get("label", "")),
            mime=str(job.get("mime", "")),
            max_text_bytes=int(job["max_text_bytes"]),
            max_parts=int(job.get("max_parts", 0)),
            max_part_bytes=int(job.get("max_part_bytes", 0)),
            max_ratio=float(job.get("max_ratio", 100.0)),
            parts_dir=Path(parts_dir) if parts_dir else None,
            ocr=bool(job.get("ocr", False)),
            ocr_engine=str(job.get("ocr_engine", "rapidocr")),
            ocr_languages=str(job.get("ocr_languages", "eng")),
            progress=progress,
        )
        found = extractor.run(Path(job["path"]), ctx)
        channel.send_result(job_id, found)
    except MemoryError:
        found = None  # free what we can before answering
        channel.send(
            {
                "id": job_id,
                "type": "error",
                "reason": "out_of_memory",
                "error_type": "MemoryError",
                "message": "the parser ran out of memory",
            }
        )
        os._exit(EXIT_OUT_OF_MEMORY)
    except ExtractionError as exc:
        channel.send(
            {
                "id": job_id,
                "type": "error",
                "reason": exc.reason,
                "error_type": type(exc).__name__,
                "message": str(exc),
            }
        )
    except RecursionError as exc:
        channel.send(_failure(job_id, exc, "the parser recursed too deep"))
    except Exception as exc:  # any parser failure is this file's failure, not the worker's
        channel.send(_failure(job_id, exc, None))


def _failure(job_id: Any, exc: BaseException, message: str | None) -> dict[str, Any]:
    return {
        "id": job_id,
        "type": "error",
        "reason": "extraction",
        "error_type": type(exc).__name__,
        "message": message or f"{type(exc).__name__}: {exc}"[:2000],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the extraction worker: read JSON jobs from stdin, one a line, answer on the protocol.

    It caps its memory (``--memory-mb``), imports ``--plugin`` modules, announces itself
    ``ready`` and handles jobs until stdin closes; returns the exit status (0).
    """
    parser = argparse.ArgumentParser(prog="thunderline.extract.worker")
    parser.add_argument("--memory-mb", type=int, default=0, help="RLIMIT_AS cap (0: none)")
    parser.add_argument(
        "--plugin", action="append", default=[], help="Module registering more extractors."
    )
    parser.add_argument(
        "--trim-mb",
        type=float,
        default=DEFAULT_MIN_GROWTH_MB,
        help="malloc_trim after a file once RSS grew this many MB (negative: never)",
    )
    args = parser.parse_args(argv)
    trimmer = Trimmer(args.trim_mb)
    stream = _protocol_stream()
    cap_memory(args.memory_mb)
    for plugin in args.plugin:
        importlib.import_module(plugin)
    channel = _Channel(stream)
    channel.send({"type": "ready", "version": PROTOCOL_VERSION, "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except json.JSONDecodeError as exc:
            channel.send({"id": None, "type": "error", "reason": "parse", "message": str(exc)})
            continue
        handle(job, channel)
        trimmer.maybe_trim()  # the file's parser memory is free now: give it back
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
