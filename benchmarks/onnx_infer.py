"""Benchmark: raw ONNX Runtime vs ``OnnxModel.infer`` and the dynamic batcher.

Same model (the MobileNetV2 224x224 test model, ``tests/fixtures/models/image_classifier``:
the trained Fashion-MNIST model in ``models/`` is too small to measure batching), same inputs, same
run, same session options (threads from ``TL_ONNX_THREADPOOL`` capped at the cores, spinning
off), so the figures measure our layer, not a configuration difference.

Both throughput figures are the best of ``--rounds`` alternating rounds.

1. Latency at batch 1, raw ``InferenceSession.run`` and ``OnnxModel.infer`` alternating call by
   call: p50/p95/p99. Overhead goal <= 1.10, reported as ``raw_p50 / ours_p50`` (higher is
   better; goal 0.91).
2. Throughput: 16 concurrent callers, one image each per request, through the supervisor's
   dynamic batcher (settings defaults: max batch 8, 2 ms delay, calibrated batch cap) against
   raw ONNX Runtime in one loop at its best fixed batch size (1, 2, 4, 8 tried). Goal >= 0.9.

Usage: .venv/bin/python benchmarks/onnx_infer.py [--runs 300] [--images 480]
The last line printed is one JSON object (ARCHITECTURE §9); the ``ratio`` is the throughput
ratio, the latency ratio sits in ``ours``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from thunderline.config import load_settings
from thunderline.ml import ModelRegistry, ModelSupervisor, SessionConfig
from thunderline.ml.model import resolve_providers, session_options

ROOT = Path(__file__).resolve().parents[1]
MODEL = "image_classifier"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _latency(values_ms: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(_pct(values_ms, q), 3) for q in (50, 95, 99)}


def bench_latency(registry: ModelRegistry, config: SessionConfig, runs: int) -> dict[str, Any]:
    entry = registry.entry(MODEL)
    data = (registry.path_of(entry)).read_bytes()
    raw = ort.InferenceSession(
        data, sess_options=session_options(config), providers=resolve_providers(config.provider)
    )
    ours = registry.get_model(MODEL)
    x = np.random.default_rng(0).normal(0, 1, (1, 3, 224, 224)).astype(np.float32)
    feeds = {"pixel_values": x}
    for _ in range(20):
        raw.run(None, feeds)
        ours.infer(feeds)
    raw_ms: list[float] = []
    ours_ms: list[float] = []
    for i in range(runs):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for which in order:
            t0 = time.perf_counter()
            if which == 0:
                raw.run(None, feeds)
                raw_ms.append((time.perf_counter() - t0) * 1000)
            else:
                ours.infer(feeds, correlation_id="bench")
                ours_ms.append((time.perf_counter() - t0) * 1000)
    a = raw.run(None, feeds)[0]
    b = ours.infer(feeds)["probabilities"]
    assert np.array_equal(a, b), "raw and ours disagree"
    return {"raw": _latency(raw_ms), "ours": _latency(ours_ms)}


def bench_raw_throughput(
    registry: ModelRegistry, config: SessionConfig, images: int
) -> dict[str, Any]:
    entry = registry.entry(MODEL)
    raw = ort.InferenceSession(
        registry.path_of(entry).read_bytes(),
        sess_options=session_options(config),
        providers=resolve_providers(config.provider),
    )
    rng = np.random.default_rng(1)
    per_size: dict[str, float] = {}
    for size in (1, 2, 4, 8):
        x = rng.normal(0, 1, (size, 3, 224, 224)).astype(np.float32)
        for _ in range(2):
            raw.run(None, {"pixel_values": x})
        calls = max(1, images // size)
        t0 = time.perf_counter()
        for _ in range(calls):
            raw.run(None, {"pixel_values": x})
        per_size[str(size)] = round(calls * size / (time.perf_counter() - t0), 1)
    best = max(per_size, key=lambda k: per_size[k])
    return {"images_per_s_by_batch": per_size, "best_batch": int(best), "best": per_size[best]}


def bench_batcher_throughput(
    supervisor: ModelSupervisor, images: int, callers: int = 16
) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    inputs = [rng.normal(0, 1, (1, 3, 224, 224)).astype(np.float32) for _ in range(callers)]
    for x in inputs[:4]:
        supervisor.infer(MODEL, x, timeout=60)
    per_caller = max(1, images // callers)
    latencies: list[float] = []
    batch_sizes: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(callers + 1)

    def caller(i: int) -> None:
        mine: list[float] = []
        sizes: list[int] = []
        barrier.wait()
        for _ in range(per_caller):
            t0 = time.perf_counter()
            result = supervisor.infer(MODEL, inputs[i], timeout=120)
            mine.append((time.perf_counter() - t0) * 1000)
            sizes.append(result.batch_size)
        with lock:
            latencies.extend(mine)
            batch_sizes.extend(sizes)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "images_per_s": round(per_caller * callers / wall, 1),
        "callers": callers,
        "mean_batch_size": round(float(np.mean(batch_sizes)), 2),
        "request": _latency(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="Alternating batch-1 calls.")
    parser.add_argument("--images", type=int, default=480, help="Images per throughput run.")
    parser.add_argument("--rounds", type=int, default=2, help="Alternating throughput rounds.")
    args = parser.parse_args()
    # the fixture registry is not signed (tests sign a copy at run time): no signature check here
    settings = load_settings(
        onnx_model_dir=ROOT / "tests" / "fixtures" / "models", model_signature_required=False
    )
    config = SessionConfig.from_settings(settings)
    registry = ModelRegistry.from_settings(settings)

    latency = bench_latency(registry, config, args.runs)
    print(f"batch 1 latency: raw {latency['raw']}  ours {latency['ours']}", file=sys.stderr)
    supervisor = ModelSupervisor.from_settings(settings, registry)
    health = supervisor.start([MODEL])[0]
    raw_rounds: list[dict[str, Any]] = []
    ours_rounds: list[dict[str, Any]] = []
    for _ in range(args.rounds):  # alternate, so a noisy neighbour hits both
        raw_rounds.append(bench_raw_throughput(registry, config, args.images))
        print(f"raw throughput: {raw_rounds[-1]}", file=sys.stderr)
        ours_rounds.append(bench_batcher_throughput(supervisor, args.images))
        print(f"batcher throughput: {ours_rounds[-1]}", file=sys.stderr)
    supervisor.close()
    raw_tp = max(raw_rounds, key=lambda r: float(r["best"]))
    ours_tp = {
        **max(ours_rounds, key=lambda r: float(r["images_per_s"])),
        "batch_cap": health.batch_cap,
    }

    latency_ratio = latency["raw"]["p50_ms"] / latency["ours"]["p50_ms"]
    throughput_ratio = ours_tp["images_per_s"] / raw_tp["best"]
    result = {
        "name": "onnx_infer",
        "baseline": {
            "what": "raw InferenceSession.run, same model, inputs and session options",
            "batch1_latency": latency["raw"],
            "throughput": raw_tp,
        },
        "ours": {
            "what": "OnnxModel.infer at batch 1; supervisor + DynamicBatcher, 16 callers",
            "batch1_latency": latency["ours"],
            "batch1_latency_ratio": round(latency_ratio, 3),
            "batch1_latency_goal": 0.91,
            "overhead_p50_ms": round(latency["ours"]["p50_ms"] - latency["raw"]["p50_ms"], 3),
            "throughput": ours_tp,
        },
        "ratio": round(throughput_ratio, 3),
        "goal": 0.9,
        "unit": "ratio: batcher images/s over raw ORT images/s at its best fixed batch "
        "(batch1_latency_ratio: raw p50 / ours p50)",
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "onnx": onnx.__version__,
            "numpy": np.__version__,
            "intra_op_threads": config.threads,
            "allow_spinning": config.allow_spinning,
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
