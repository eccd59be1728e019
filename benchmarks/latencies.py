"""Latency distribution of each measured step, to choose histogram buckets (obs/metrics.py).

Runs the whole pipeline (ONNX on) over a folder (default: the peer Magika test files, three
times) and records every observation the latency histograms receive, then prints min / p50 /
p95 / p99 / max per histogram. Not a speed comparison (there is no baseline): the last line is
JSON with the percentiles.

    .venv/bin/python benchmarks/latencies.py [FOLDER] [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from thunderline.classify import iter_candidates
from thunderline.config import load_settings
from thunderline.obs import metrics
from thunderline.runtime import Runtime

HISTOGRAMS = (
    "MAGIKA_CLASSIFY_DURATION",
    "SPACY_PROCESS_DURATION",
    "ONNX_INFER_DURATION",
    "VOXEL_BUILD_DURATION",
    "STAGE_DURATION",
)
PEER = Path(__file__).resolve().parents[2] / "shared" / "peer" / "magika_tests_data" / "basic"


def _record(raw: dict[str, list[float]], name: str, target: Any) -> None:
    original = target.observe

    def observe(value: float, *args: Any, **kwargs: Any) -> None:
        raw.setdefault(name, []).append(value)
        original(value, *args, **kwargs)

    target.observe = observe


def capture(raw: dict[str, list[float]]) -> None:
    for name in HISTOGRAMS:
        hist = getattr(metrics, name)
        if not hist._labelnames:
            _record(raw, name, hist)
            continue
        labels = hist.labels

        def wrapped(*args: Any, _labels: Any = labels, _name: str = name, **kwargs: Any) -> Any:
            child = _labels(*args, **kwargs)
            if not getattr(child, "_tl_recorded", False):
                _record(raw, _name, child)
                child._tl_recorded = True
            return child

        hist.labels = wrapped


async def run(folder: Path, repeat: int) -> None:
    settings = load_settings(home=Path(tempfile.mkdtemp(prefix="tl-latencies-")), onnx_enabled=True)
    async with Runtime(settings) as runtime:
        for _ in range(repeat):
            await runtime.submit_files(iter_candidates([folder], recursive=True))
        await runtime.wait_idle(900)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=PEER)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raw: dict[str, list[float]] = {}
    capture(raw)
    asyncio.run(run(args.folder, args.repeat))
    out: dict[str, dict[str, float]] = {}
    for name, values in sorted(raw.items()):
        values.sort()

        def q(p: float, v: list[float] = values) -> float:
            return v[min(len(v) - 1, int(p * len(v)))]

        out[name] = {
            "n": len(values),
            "min": values[0],
            "p50": q(0.5),
            "p95": q(0.95),
            "p99": q(0.99),
            "max": values[-1],
        }
        print(
            f"{name:28} n={len(values):5} p50={q(0.5) * 1000:8.2f} ms p99={q(0.99) * 1000:8.2f} ms"
        )
    print(json.dumps({"benchmark": "latencies", "seconds": out}))


if __name__ == "__main__":
    main()
