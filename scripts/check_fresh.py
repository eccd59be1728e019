"""The newcomer path, as `make check-fresh` runs it on every CI run.

Clones this repository's committed HEAD into a temporary folder and runs ``make demo`` there
with an empty pip cache and no ``TL_*`` settings, exactly as a new user would after
``git clone``. Then checks what the demo left behind in its embedded store
(``.thunderline/thunderline.db``): every file shipped in ``examples/`` ended as a voxel
(archives add their members; a duplicate is linked to the voxel already stored), every voxel is
named by an outcome, and nothing was dead-lettered.

Prints one JSON line (exit code, seconds, voxel count) and exits non-zero on any failure, with
the tail of the demo's output. Uncommitted changes are not part of the check (a clone sees
commits only); the script says so when the tree is dirty.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600


class FreshCheckError(Exception):
    """The newcomer path failed: the message says which step and why."""


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def _clean_env(pip_cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TL_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    env["PIP_CACHE_DIR"] = str(pip_cache)
    return env


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _store_counts(db: Path) -> tuple[int, int, int, int]:
    """(voxels, artifacts that ended as a voxel, distinct voxels they name, dead letters).

    An artifact whose bytes were already stored ends linked to that voxel (the default
    duplicate policy), so artifacts may outnumber voxels; every voxel is named by an outcome.
    """
    if not db.is_file():
        raise FreshCheckError(f"the demo left no store at {db}")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        voxels = conn.execute("SELECT count(*) FROM voxels").fetchone()[0]
        done, named = conn.execute(
            "SELECT count(*), count(DISTINCT voxel_id) FROM outcomes WHERE kind = 'voxel'"
        ).fetchone()
        dlq = conn.execute("SELECT count(*) FROM outcomes WHERE kind = 'dlq'").fetchone()[0]
    return int(voxels), int(done), int(named), int(dlq)


def check(workdir: Path) -> dict[str, object]:
    """Clone, ``make demo`` with an empty pip cache, and check the store; raise on failure."""
    clone = workdir / "thunderline"
    pip_cache = workdir / "pip-cache"
    pip_cache.mkdir()
    _git("clone", "--quiet", "--no-hardlinks", str(REPO), str(clone))
    examples = [p for p in (clone / "examples").rglob("*") if p.is_file()]
    log = workdir / "demo.log"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "demo"],
            cwd=clone,
            env=_clean_env(pip_cache),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a timeout stops every child
        )
        try:
            proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise FreshCheckError(
                f"make demo did not finish in {TIMEOUT_S} s:\n{_tail(log)}"
            ) from exc
    seconds = round(time.monotonic() - started, 1)
    tail = _tail(log)
    if proc.returncode != 0:
        raise FreshCheckError(f"make demo exited {proc.returncode} after {seconds} s:\n{tail}")
    voxels, done, named, dlq = _store_counts(clone / ".thunderline" / "thunderline.db")
    if dlq:
        raise FreshCheckError(f"the demo dead-lettered {dlq} artifact(s):\n{tail}")
    if done < len(examples) or named != voxels or voxels == 0:
        raise FreshCheckError(
            f"{done} artifacts ended as voxels for {len(examples)} example files; "
            f"{voxels} voxels stored, {named} named by outcomes:\n{tail}"
        )
    return {
        "check": "fresh_clone_make_demo",
        "exit_code": proc.returncode,
        "seconds_install_included": seconds,
        "example_files": len(examples),
        "artifacts_stored": done,
        "voxels": voxels,
        "dead_lettered": dlq,
        "pip_cache": "empty",
    }


def main() -> int:
    """Run the check in a temporary folder and print its JSON result."""
    if _git("status", "--porcelain", "--untracked-files=no").strip():
        print("check-fresh: uncommitted changes are not checked (a clone sees commits only)")
    workdir = Path(tempfile.mkdtemp(prefix="tl-fresh-"))
    try:
        result = check(workdir)
    except (FreshCheckError, subprocess.CalledProcessError) as exc:
        print(f"check-fresh: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
