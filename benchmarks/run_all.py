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

Usage: ``.venv/bin/python benchmarks/run_all.py [NAME ...] [--no-readme]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
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


def run_one(name: str) -> dict[str, Any]:
    command = [sys.executable, str(HERE / f"{name}.py")]
    load = [round(x, 2) for x in os.getloadavg()]
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    entry: dict[str, Any] = {
        "command": f".venv/bin/python benchmarks/{name}.py",
        "seconds": round(time.perf_counter() - started, 1),
        "exit_code": proc.returncode,
        "date": date,
        "load_average_before": load,
    }
    lines = proc.stdout.strip().splitlines()
    try:
        entry["result"] = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        entry["result"] = None
    if proc.returncode != 0 or entry["result"] is None:
        entry["stderr_tail"] = proc.stderr.strip().splitlines()[-15:]
    return entry


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
        "| benchmark | ratio (ours / raw) | goal | unit |",
        "|---|---|---|---|",
    ]
    for name, entry in results["benchmarks"].items():
        result = entry.get("result")
        if not isinstance(result, dict):
            lines.append(f"| {name} | failed (exit {entry['exit_code']}) | | |")
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
        results["benchmarks"][name] = run_one(name)
        print(json.dumps(results["benchmarks"][name])[:400], file=sys.stderr)
    results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    if not args.no_readme:
        write_readme(results)
    print(json.dumps({"name": "all", "results": str(RESULTS.relative_to(ROOT)), "ran": names}))


if __name__ == "__main__":
    main()
