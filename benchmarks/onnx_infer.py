"""Benchmark: raw ONNX Runtime vs ``OnnxModel.infer`` and the dynamic batcher.

Same model (the MobileNetV2 224x224 test model, ``tests/fixtures/models/image_classifier``:
the trained Fashion-MNIST model in ``models/`` is too small to measure batching), same inputs, same
run, same session options (threads from ``TL_ONNX_THREADPOOL`` capped at the cores, spinning
off), so the figures measure our layer, not a configuration difference.


1. Latency at batch 1, raw ``InferenceSession.run`` and ``OnnxModel.infer`` alternating call by
   call: p50/p95/p99. Overhead goal <= 1.10, reported as ``raw_p50 / ours_p50`` (higher is
   better; goal 0.91).
2. Throughput, ``--runs-16`` (5) consecutive runs: in each, raw ONNX Runtime in one loop at
   each fixed batch size (1, 2, 4, 8; the best is the baseline), then 16 concurrent callers,
   one image per request, through a **fresh** supervisor and its dynamic batcher (settings
   defaults: max batch 8, 2 ms delay, adaptive batch size learnt while serving: nothing is
   carried over from one run to the next). Each is measured in images/s and in CPU-seconds
   per image (this process, every thread: the callers, the batcher and ONNX Runtime's pool);
   the CPU baseline is raw ORT at its cheapest fixed batch. Goal >= 0.9 in every run on both;
   ``ratio`` is the worst CPU ratio (robust to the machine's load), ``images_per_s_ratio``
   the worst throughput ratio.
3. The adaptive policy under 1, 4 and 16 callers: images/s, mean batch size and what the
   policy learnt, beside raw ORT at its best fixed batch no larger than the caller count.

Usage: .venv/bin/python benchmarks/onnx_infer.py [--runs 300] [--images 480] [--runs-16 5]
The last line printed is one JSON object (ARCHITECTURE §9); the ``ratio`` is the worst CPU
ratio of the runs, the latency ratios (wall p50 and CPU per call) sit in ``ours``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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
#: Slices each fixed batch size of the raw baseline is measured in, taking turns.
ROUNDS = 3


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
    cpu = [0.0, 0.0]
    for i in range(runs):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for which in order:
            t0, c0 = time.perf_counter(), _cpu_s()
            if which == 0:
                raw.run(None, feeds)
                raw_ms.append((time.perf_counter() - t0) * 1000)
            else:
                ours.infer(feeds, correlation_id="bench")
                ours_ms.append((time.perf_counter() - t0) * 1000)
            cpu[which] += _cpu_s() - c0
    a = raw.run(None, feeds)[0]
    b = ours.infer(feeds)["probabilities"]
    assert np.array_equal(a, b), "raw and ours disagree"
    return {
        "raw": {**_latency(raw_ms), "cpu_ms_per_call": round(cpu[0] / runs * 1000, 3)},
        "ours": {**_latency(ours_ms), "cpu_ms_per_call": round(cpu[1] / runs * 1000, 3)},
    }


def _load() -> float:
    """The 1-minute load average (recorded beside every run)."""
    with open("/proc/loadavg") as fh:
        return float(fh.read().split()[0])


def _spread(values: list[float]) -> dict[str, float]:
    """Min, median, max and the relative spread (max - min) / median of the runs' ratios."""
    median = float(np.median(values))
    return {
        "min": round(min(values), 3),
        "median": round(median, 3),
        "max": round(max(values), 3),
        "spread": round((max(values) - min(values)) / median, 3),
    }


def _cpu_s() -> float:
    """CPU-seconds of this process so far (every thread: ONNX Runtime's pool included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_raw_throughput(
    registry: ModelRegistry,
    config: SessionConfig,
    images: int,
    sizes: tuple[int, ...] = (1, 2, 4, 8),
) -> dict[str, Any]:
    entry = registry.entry(MODEL)
    raw = ort.InferenceSession(
        registry.path_of(entry).read_bytes(),
        sess_options=session_options(config),
        providers=resolve_providers(config.provider),
    )
    rng = np.random.default_rng(1)
    feeds = {
        size: {"pixel_values": rng.normal(0, 1, (size, 3, 224, 224)).astype(np.float32)}
        for size in sizes
    }
    for size in sizes:
        for _ in range(2):
            raw.run(None, feeds[size])
    # the sizes take turns in ROUNDS slices, so a change of load mid-run hits all of them
    wall = dict.fromkeys(sizes, 0.0)
    cpu = dict.fromkeys(sizes, 0.0)
    done = dict.fromkeys(sizes, 0)
    for _round in range(ROUNDS):
        for size in sizes:
            calls = max(1, images // size // ROUNDS)
            t0, c0 = time.perf_counter(), _cpu_s()
            for _ in range(calls):
                raw.run(None, feeds[size])
            wall[size] += time.perf_counter() - t0
            cpu[size] += _cpu_s() - c0
            done[size] += calls * size
    per_size = {str(s): round(done[s] / wall[s], 1) for s in sizes}
    cpu_ms = {str(s): round(cpu[s] / done[s] * 1000, 3) for s in sizes}
    best = max(per_size, key=lambda k: per_size[k])
    cheapest = min(cpu_ms, key=lambda k: cpu_ms[k])
    return {
        "images_per_s_by_batch": per_size,
        "best_batch": int(best),
        "best": per_size[best],
        "cpu_ms_per_image_by_batch": cpu_ms,
        "cheapest_batch": int(cheapest),
        "cpu_ms_per_image": cpu_ms[cheapest],
    }


def bench_batcher_throughput(
    supervisor: ModelSupervisor, images: int, callers: int = 16
) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    inputs = [rng.normal(0, 1, (1, 3, 224, 224)).astype(np.float32) for _ in range(callers)]
    for x in inputs[:4]:
        supervisor.infer(MODEL, x, timeout=60)
    per_caller = max(1, images // callers)
    batcher = supervisor.worker(MODEL).batcher
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
    t0, c0 = time.perf_counter(), _cpu_s()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = _cpu_s() - c0
    return {
        "images_per_s": round(per_caller * callers / wall, 1),
        "cpu_ms_per_image": round(cpu / (per_caller * callers) * 1000, 3),
        "callers": callers,
        "mean_batch_size": round(float(np.mean(batch_sizes)), 2),
        "request": _latency(latencies),
        "policy": batcher.policy.snapshot(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="Alternating batch-1 calls.")
    parser.add_argument("--images", type=int, default=480, help="Images per throughput run.")
    parser.add_argument("--runs-16", type=int, default=5, help="Consecutive 16-caller runs.")
    args = parser.parse_args()
    # the fixture registry is not signed (tests sign a copy at run time): no signature check here
    settings = load_settings(
        onnx_model_dir=ROOT / "tests" / "fixtures" / "models", model_signature_required=False
    )
    config = SessionConfig.from_settings(settings)
    registry = ModelRegistry.from_settings(settings)

    latency = bench_latency(registry, config, args.runs)
    print(f"batch 1 latency: raw {latency['raw']}  ours {latency['ours']}", file=sys.stderr)
    runs: list[dict[str, Any]] = []
    for run in range(args.runs_16):  # raw then ours in each run, so load hits both
        load_before = _load()
        raw = bench_raw_throughput(registry, config, args.images)
        supervisor = ModelSupervisor.from_settings(settings, registry)
        supervisor.start([MODEL])
        try:
            ours = bench_batcher_throughput(supervisor, args.images)
        finally:
            supervisor.close()
        runs.append(
            {
                "raw_best": raw["best"],
                "raw_best_batch": raw["best_batch"],
                "raw_by_batch": raw["images_per_s_by_batch"],
                "raw_cpu_ms_by_batch": raw["cpu_ms_per_image_by_batch"],
                "ours": ours["images_per_s"],
                "ours_mean_batch": ours["mean_batch_size"],
                "ours_policy": ours["policy"],
                "ratio": round(ours["images_per_s"] / raw["best"], 3),
                "raw_cpu_ms_per_image": raw["cpu_ms_per_image"],
                "raw_cheapest_batch": raw["cheapest_batch"],
                "ours_cpu_ms_per_image": ours["cpu_ms_per_image"],
                "cpu_ratio": round(raw["cpu_ms_per_image"] / ours["cpu_ms_per_image"], 3),
                "load_avg": [load_before, _load()],
            }
        )
        print(f"run {run + 1}: {runs[-1]}", file=sys.stderr)
    callers_table: dict[str, Any] = {}
    for callers in (1, 4, 16):
        sizes = tuple(s for s in (1, 2, 4, 8) if s <= callers)
        raw = bench_raw_throughput(registry, config, args.images // 2, sizes)
        supervisor = ModelSupervisor.from_settings(settings, registry)
        supervisor.start([MODEL])
        try:
            ours = bench_batcher_throughput(supervisor, args.images // 2, callers)
        finally:
            supervisor.close()
        callers_table[str(callers)] = {
            "raw_best_fixed_batch": raw["best"],
            "raw_best_batch": raw["best_batch"],
            "ours": ours["images_per_s"],
            "ratio": round(ours["images_per_s"] / raw["best"], 3),
            "mean_batch_size": ours["mean_batch_size"],
            "request": ours["request"],
            "policy": ours["policy"],
        }
        print(f"{callers} callers: {callers_table[str(callers)]}", file=sys.stderr)
    worst = min(runs, key=lambda r: float(r["ratio"]))
    worst_cpu = min(float(r["cpu_ratio"]) for r in runs)
    raw_tp = {"best": worst["raw_best"], "best_batch": worst["raw_best_batch"]}
    ours_tp = {"images_per_s": worst["ours"], "mean_batch_size": worst["ours_mean_batch"]}

    latency_ratio = latency["raw"]["p50_ms"] / latency["ours"]["p50_ms"]
    throughput_ratio = float(worst["ratio"])
    result = {
        "name": "onnx_infer",
        "baseline": {
            "what": "raw InferenceSession.run, same model, inputs and session options",
            "batch1_latency": latency["raw"],
            "throughput": raw_tp,
        },
        "ours": {
            "what": "OnnxModel.infer at batch 1; supervisor + DynamicBatcher, 16 callers "
            "(throughput: the worst of the runs)",
            "batch1_latency": latency["ours"],
            "batch1_latency_ratio": round(latency_ratio, 3),
            "batch1_latency_goal": round(1 / 1.05, 3),
            "overhead_p50_ms": round(latency["ours"]["p50_ms"] - latency["raw"]["p50_ms"], 3),
            "throughput": ours_tp,
            "runs_16_callers": runs,
            "ratios_16_callers": [r["ratio"] for r in runs],
            "all_runs_met": all(float(r["ratio"]) >= 0.9 for r in runs),
            "cpu_ratios_16_callers": [r["cpu_ratio"] for r in runs],
            "all_runs_cpu_met": all(float(r["cpu_ratio"]) >= 0.9 for r in runs),
            "spread_16_callers": {
                key: _spread([float(r[key]) for r in runs]) for key in ("cpu_ratio", "ratio")
            },
            "load_avg_16_callers": [r["load_avg"] for r in runs],
            "batch1_cpu_ratio": round(
                latency["raw"]["cpu_ms_per_call"] / latency["ours"]["cpu_ms_per_call"], 3
            ),
            "by_callers": callers_table,
            "batch1_overhead_met": latency["ours"]["p50_ms"] <= 1.05 * latency["raw"]["p50_ms"],
        },
        "ratio": round(worst_cpu, 3),
        "images_per_s_ratio": round(throughput_ratio, 3),
        "goal": 0.9,
        "met": all(float(r["cpu_ratio"]) >= 0.9 for r in runs)
        and all(float(r["ratio"]) >= 0.9 for r in runs)
        and latency["ours"]["p50_ms"] <= 1.05 * latency["raw"]["p50_ms"],
        "unit": "ratio: worst over the runs of raw ORT CPU-ms per image at its cheapest fixed "
        "batch / the batcher's under 16 callers, same run (images_per_s_ratio: the same for "
        "images/s at raw's fastest batch; batch1_latency_ratio: raw p50 / ours p50, goal "
        "overhead <= 1.05x)",
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
