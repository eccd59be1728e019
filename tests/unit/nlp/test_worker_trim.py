"""The spaCy worker gives a batch's freed native memory back after answering it."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from thunderline.config import load_settings
from thunderline.nlp.pool import PoolConfig
from thunderline.nlp.result import batch_line, request_item, request_line
from thunderline.nlp.worker import Request, RequestLoop


class _Analyzer:
    def analyze_many(self, requests: Sequence[Request]) -> list[dict[str, Any]]:
        return [{"doc_id": r.doc_id, "n": len(r.text)} for r in requests]


class _Trimmer:
    """Records, at each call, how many answer lines the parent could already read."""

    def __init__(self, out: io.BytesIO) -> None:
        self.out = out
        self.answered_at_call: list[int] = []

        self.busy: list[bool] = []

    def maybe_trim(self, *, busy: bool = False) -> bool:
        self.answered_at_call.append(self.out.getvalue().count(b"\n"))
        self.busy.append(busy)
        return True


def test_each_request_line_is_answered_in_full_before_the_trim() -> None:
    lines = [
        batch_line([request_item("a", "one"), request_item("b", "two"), request_item("c", "x")]),
        request_line("d", "four"),
        batch_line([request_item("e", "five"), request_item("f", "six")]),
    ]
    out = io.BytesIO()
    trimmer = _Trimmer(out)
    loop = RequestLoop(
        _Analyzer(),  # type: ignore[arg-type]
        out,
        io.BytesIO(b"".join(lines)),
        10.0,
        trimmer=trimmer,  # type: ignore[arg-type]
    )
    assert loop.run() == 0
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [a["doc_id"] for a in answers] == ["a", "b", "c", "d", "e", "f"]  # nothing lost
    assert trimmer.answered_at_call == [3, 4, 6]  # once per line, after its answers


def test_the_pool_passes_the_trim_threshold_to_its_workers(tmp_path: Any) -> None:
    config = PoolConfig.from_settings(load_settings(home=tmp_path, malloc_trim_mb=12.5))
    args = config.worker_args()
    assert args[args.index("--trim-mb") + 1] == "12.5"


def test_the_trim_knows_whether_the_next_request_is_waiting(tmp_path: Any) -> None:
    import os
    import threading

    read_fd, write_fd = os.pipe()
    inp = os.fdopen(read_fd, "rb", buffering=0)  # unbuffered: the pipe shows what waits
    out = io.BytesIO()
    trimmer = _Trimmer(out)
    loop = RequestLoop(_Analyzer(), out, inp, 10.0, trimmer=trimmer)  # type: ignore[arg-type]
    os.write(write_fd, request_line("a", "one") + request_line("b", "two"))
    worker = threading.Thread(target=loop.run)
    worker.start()
    try:
        for _ in range(500):
            if len(trimmer.answered_at_call) == 2:
                break
            threading.Event().wait(0.01)
        # "a" was answered while "b" waited (busy); "b" with nothing waiting
        assert trimmer.answered_at_call == [1, 2]
        assert trimmer.busy == [True, False]
    finally:
        os.close(write_fd)  # EOF: the loop ends
        worker.join(10)
        inp.close()
    assert [json.loads(line)["doc_id"] for line in out.getvalue().splitlines()] == ["a", "b"]
