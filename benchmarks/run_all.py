"""Run every benchmark, collect their JSON last lines into ``benchmarks/results.json``.

``make bench`` runs this. Each benchmark (every ``benchmarks/*.py`` but the corpus builders and
this file, or the names given on the command line) runs in its own process, one after the other;
its last stdout line (one JSON object, ARCHITECTURE §9) is stored under its name with the command
and its duration. A benchmark that fails is recorded with its exit code and the tail of its
stderr, and the others still run. The file also records the machine (CPU model, cores, load
average before and after) and the date, and the table between the ``bench:start``/``bench:end``
markers of the README is rewritten from it (``--no-readme`` to leave it alone).

With names, only those run and their entries replace the ones already in ``results.json``
(each entry keeps its own date and load average).

Every benchmark has a time limit (``TIME_LIMITS_S``, else ``--timeout``): past it, its whole
process group is killed and the entry says ``timed out after N s`` with the tail of its
stderr, and the next benchmark runs. A benchmark that cannot run here (a missing extra, an
unreachable service it needs) prints one JSON object with a ``skipped`` reason and exits 0; the
table says so. ``run_all.py`` exits 1 when any benchmark failed or timed out.

Usage: ``.venv/bin/python benchmarks/run_all.py [NAME ...] [--no-readme] [--timeout S]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results.json"
README = ROOT / "README.md"
NOT_BENCHMARKS = {"corpus", "nlp_corpus", "run_all"}
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
#: Seconds a benchmark may take on the shared 2-core machine (about 3x its slowest run seen);
#: the others get ``--timeout``.
TIME_LIMITS_S = {
    "e2e": 2400,
    "scale": 1800,
    "nlp": 900,
    "search": 900,
    "convert": 900,
    "onnx_infer": 1200,
    "classify": 900,
    "sync": 1200,  # 100k files made and removed: 6 min at load 13-16, mostly rmtree of the tree
    "export": 4800,  # builds 100k voxels on each backend, six exports per size
    "search_ingest": 3600,  # four e2e pipeline runs
}
DEFAULT_LIMIT_S = 600


def discover() -> list[str]:
    return sorted(
        p.stem
        for p in HERE.glob("*.py")
        if p.stem not in NOT_BENCHMARKS and not p.stem.startswith("_")
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_one(name: str, limit_s: float) -> dict[str, Any]:
    """Run one benchmark in its own process group, killed (all of it) past ``limit_s``."""
    command = [sys.executable, str(HERE / f"{name}.py")]
    load = [round(x, 2) for x in os.getloadavg()]
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # its workers and brokers' clients die with it on a timeout
    )
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        stdout, stderr = proc.communicate()
    entry: dict[str, Any] = {
        "command": f".venv/bin/python benchmarks/{name}.py",
        "seconds": round(time.perf_counter() - started, 1),
        "exit_code": proc.returncode,
        "time_limit_s": limit_s,
        "date": date,
        "load_average_before": load,
    }
    lines = stdout.strip().splitlines()
    try:
        entry["result"] = json.loads(lines[-1]) if lines and not timed_out else None
    except json.JSONDecodeError:
        entry["result"] = None
    if timed_out:
        entry["error"] = f"timed out after {limit_s:g} s (process group killed)"
    elif proc.returncode != 0:
        entry["error"] = f"exit code {proc.returncode}"
    elif entry["result"] is None:
        entry["error"] = "no JSON object on the last stdout line"
    if "error" in entry:
        entry["stderr_tail"] = stderr.strip().splitlines()[-15:]
    return entry


def _kill_group(pid: int) -> None:
    """SIGTERM the benchmark's process group, SIGKILL what is left after 10 s."""
    for sig, pause in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def _goal_text(result: dict[str, Any]) -> str:
    goal = result.get("goal")
    if goal is None:
        return ""
    met = result.get("met")
    if met is None:
        ratio = result.get("ratio")
        met = isinstance(ratio, int | float) and ratio >= goal
    return f">= {goal} ({'met' if met else 'not met'})"


def table(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        START,
        f"Measured {results['date']} on {machine['cpu']} ({machine['cores']} cores, "
        f"load average {machine['load_before']} before the run; the machine was shared, "
        "so ratios are noisy). Command: `make bench`; every figure is in "
        "`benchmarks/results.json`.",
        "",
        "| benchmark | ratio (higher is better: see unit) | goal | unit |",
        "|---|---|---|---|",
    ]
    for name, entry in results["benchmarks"].items():
        result = entry.get("result")
        if not isinstance(result, dict):
            why = entry.get("error") or f"exit {entry['exit_code']}"
            lines.append(f"| {name} | failed ({why}) | | |")
            continue
        if result.get("skipped"):
            lines.append(f"| {name} | skipped: {str(result['skipped']).replace('|', '/')} | | |")
            continue
        unit = str(result.get("unit", "")).replace("|", "/")
        lines.append(
            f"| {name} | {result.get('ratio')} | {_goal_text(result)} | {unit} "
            f"({entry.get('date', '')}, load {entry.get('load_average_before', '')}) |"
        )
    lines.append(END)
    return "\n".join(lines)


def write_readme(results: dict[str, Any]) -> None:
    text = README.read_text()
    if START not in text or END not in text:
        return
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(head + table(results) + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="Benchmarks to run (default: all).")
    parser.add_argument("--no-readme", action="store_true", help="Leave the README alone.")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_LIMIT_S,
        help=f"Time limit (s) of a benchmark not in TIME_LIMITS_S (default {DEFAULT_LIMIT_S}).",
    )
    args = parser.parse_args()
    names = args.names or discover()
    load_before = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": load_before,
        },
        "benchmarks": {},
    }
    if args.names and RESULTS.exists():  # a partial run updates the earlier file
        results["benchmarks"] = json.loads(RESULTS.read_text()).get("benchmarks", {})
    for name in names:
        print(f"== {name}", file=sys.stderr)
        results["benchmarks"][name] = run_one(name, TIME_LIMITS_S.get(name, args.timeout))
        print(json.dumps(results["benchmarks"][name])[:400], file=sys.stderr)
    results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.names and RESULTS.exists():  # entries another partial run wrote meanwhile stay
        latest = json.loads(RESULTS.read_text()).get("benchmarks", {})
        results["benchmarks"] = {**latest, **{n: results["benchmarks"][n] for n in names}}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    if not args.no_readme:
        write_readme(results)
    failed = [n for n in names if "error" in results["benchmarks"][n]]
    print(
        json.dumps(
            {
                "name": "all",
                "results": str(RESULTS.relative_to(ROOT)),
                "ran": names,
                "failed": failed,
            }
        )
    )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
