"""``benchmarks/run_all.py`` (``make bench``): a time limit and a clear failure per benchmark."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_run_all", ROOT / "benchmarks" / "run_all.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)  # benchmarks are looked up here
    return module


def test_a_benchmark_past_its_limit_is_killed_with_its_children(
    run_all: ModuleType, tmp_path: Path
) -> None:
    marker = tmp_path / "child.pid"
    (tmp_path / "slow.py").write_text(
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(marker)!r}, 'w').write(str(child.pid))\n"
        "print('started', file=sys.stderr, flush=True)\n"
        "time.sleep(120)\n"
    )
    started = time.monotonic()
    entry = run_all.run_one("slow", 3.0)
    assert time.monotonic() - started < 60  # generous: killed, not waited for
    assert entry["error"] == "timed out after 3 s (process group killed)"
    assert entry["result"] is None
    assert "started" in entry["stderr_tail"]
    child = int(marker.read_text())
    deadline = time.monotonic() + 20
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # the grandchild is gone too (same process group)
    stat = Path(f"/proc/{child}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z"


def test_failed_skipped_and_measured_benchmarks_in_the_table(run_all: ModuleType) -> None:
    (run_all.HERE / "broken.py").write_text("import sys\nsys.exit('no service')\n")
    (run_all.HERE / "skips.py").write_text(
        'import json\nprint(json.dumps({"name": "skips", "skipped": "needs the convert extra"}))\n'
    )
    (run_all.HERE / "works.py").write_text(
        'import json\nprint(json.dumps({"name": "works", "ratio": 0.9, "goal": 0.83, "unit": "u"}))\n'
    )
    entries = {name: run_all.run_one(name, 60.0) for name in ("broken", "skips", "works")}
    assert entries["broken"]["error"] == "exit code 1"
    assert entries["broken"]["stderr_tail"] == ["no service"]
    assert "error" not in entries["skips"] and "error" not in entries["works"]
    text = run_all.table(
        {
            "date": "d",
            "machine": {"cpu": "c", "cores": 2, "load_before": [1.0, 1.0, 1.0]},
            "benchmarks": entries,
        }
    )
    assert "| broken | failed (exit code 1) | | |" in text
    assert "| skips | skipped: needs the convert extra | | |" in text
    assert "| works | 0.9 | >= 0.83 (met) |" in text
