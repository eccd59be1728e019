"""Multiprocess metrics with real processes: a root process (TL_METRICS_MULTIPROC_DIR) wipes
the folder and exports it; children write their samples there; the exposition sums counters and
histograms (a SIGKILLed child's counts are kept) and combines gauges by their mode, and
`mark_process_dead` drops an exited child's live gauges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = r'''
import json, os, signal, subprocess, sys
from thunderline.obs import metrics, multiprocess
from thunderline.obs.exposition import collect_registry

assert multiprocess.is_root() and os.environ["PROMETHEUS_MULTIPROC_DIR"]
metrics.DLQ_TOTAL.labels("classify", "too_large").inc()
metrics.QUEUE_DEPTH.labels("classify").set(2)
metrics.SPACY_CIRCUIT_STATE.set(0)
metrics.ONNX_MODEL_HEALTHY.labels("image_classifier").set(1)

CHILD = """
import sys, time
from thunderline.obs import metrics, multiprocess
assert multiprocess.enabled() and not multiprocess.is_root()
broken = sys.argv[1] == "broken"
metrics.DLQ_TOTAL.labels("classify", "too_large").inc()
metrics.MAGIKA_CLASSIFY_DURATION.observe(0.01)
metrics.QUEUE_DEPTH.labels("classify").set(3)
metrics.SPACY_CIRCUIT_STATE.set(2 if broken else 0)
metrics.ONNX_MODEL_HEALTHY.labels("image_classifier").set(0 if broken else 1)
print("ready", flush=True)
if broken:
    time.sleep(60)
"""
ok = subprocess.Popen([sys.executable, "-c", CHILD, "ok"], stdout=subprocess.PIPE, text=True)
broken = subprocess.Popen([sys.executable, "-c", CHILD, "broken"], stdout=subprocess.PIPE, text=True)
assert ok.stdout.readline().strip() == "ready" and broken.stdout.readline().strip() == "ready"
ok.wait()
broken.send_signal(signal.SIGKILL)
broken.wait()

def values():
    registry = collect_registry()
    get = registry.get_sample_value
    return {
        "dlq": get("thunderline_dlq_total", {"stage": "classify", "reason": "too_large"}),
        "magika_count": get("thunderline_magika_classify_duration_seconds_count", {}),
        "queue": get("thunderline_bus_queue_depth", {"topic": "classify"}),
        "breaker": get("thunderline_spacy_circuit_state", {}),
        "healthy": get("thunderline_onnx_model_healthy", {"model": "image_classifier"}),
    }

before = values()
multiprocess.mark_process_dead(ok.pid)
multiprocess.mark_process_dead(broken.pid)
print(json.dumps({"before": before, "after": values()}))
'''


def test_samples_of_every_process_are_combined(tmp_path: Path) -> None:
    folder = tmp_path / "prom"
    folder.mkdir()
    stale = folder / "counter_424242.db"
    stale.write_bytes(b"left over by an earlier run")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PROMETHEUS_MULTIPROC")}
    env["TL_METRICS_MULTIPROC_DIR"] = str(folder)
    result = subprocess.run(
        [sys.executable, "-c", ROOT], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert not stale.exists()  # the root wiped the folder at start

    before, after = out["before"], out["after"]
    # counters and histograms: summed over the root and both children, the killed one included
    assert before["dlq"] == after["dlq"] == 3
    assert before["magika_count"] == after["magika_count"] == 2
    # live gauges count every process until the dead ones are marked
    assert before["queue"] == 2 + 3 + 3
    assert before["breaker"] == 2
    assert before["healthy"] == 0
    assert after["queue"] == 2
    assert after["breaker"] == 0
    assert after["healthy"] == 1


def test_single_process_mode_is_the_default() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith("PROMETHEUS_MULTIPROC") and k != "TL_METRICS_MULTIPROC_DIR"
    }
    code = (
        "from thunderline.obs import metrics, multiprocess\n"
        "from thunderline.obs.exposition import collect_registry\n"
        "assert not multiprocess.enabled()\n"
        "assert collect_registry() is metrics.REGISTRY\n"
        "import sys; print('opentelemetry' in ' '.join(sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"  # tracing off: OpenTelemetry is not even imported
