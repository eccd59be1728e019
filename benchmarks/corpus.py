"""A benchmark corpus of real files copied from this machine (no download, nothing generated).

Sources, in a fixed order (those that do not exist are skipped): the running interpreter's
standard library (with its test data: images, audio, archives ...) and site-packages, the system
Python, ``/usr/share/doc``, icons and pixmaps, ``/etc``, ``/usr/bin`` and ``/usr/sbin``, shared
libraries, C headers, Perl, Node.js and Vim files, man pages, message catalogues, fonts, time-zone
binaries, Java and Erlang packages. Each source is walked in sorted order, never following
symlinks; a candidate is a regular, world-readable, non-empty file of at most ``MAX_BYTES`` that
is not a symlink (files that look like secrets are left out even when readable).

Selection is deterministic for a given machine and ``seed``: candidates are grouped by file
type (their extension, with ``libfoo.so.1.2`` counted as ``.so``), each group is shuffled by a
``random.Random(seed)``, then half of the corpus is taken round-robin over the groups, largest
group first (so that rare types are present), and the other half by a seeded uniform sample of
what is left (so that common types dominate, as on a real disk). Files with the same content
are taken once.

The copies are named ``NNNN-<original name>`` (made ASCII-safe) in the target folder (default
``benchmarks/.corpus/``, gitignored); ``.manifest.json`` next to them records where each came
from. A second call with the same ``n`` and ``seed`` reuses the corpus when it is intact.

Usage: ``.venv/bin/python benchmarks/corpus.py [--target DIR] [-n 1000] [--seed 0]``; prints a
JSON summary (count, bytes, counts by extension).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import stat
import sys
import sysconfig
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_TARGET = HERE / ".corpus"
MAX_BYTES = 2 * 1024 * 1024
MANIFEST = ".manifest.json"
MANIFEST_VERSION = 1
#: Candidates taken from one source at most (sorted walk), to bound the walk on huge trees.
MAX_PER_SOURCE = 40_000

_SECRET_NAME = re.compile(
    r"^g?shadow|^id_(rsa|dsa|ecdsa|ed25519)|netrc$|pgpass$|\.erlang\.cookie$|"
    r"(_key|\.key|\.pem|\.p12|\.pfx|\.keytab)$",
    re.IGNORECASE,
)
_SECRET_DIRS = frozenset({"private", "secrets", "ssh", ".ssh", "gnupg", ".gnupg", "sudoers.d"})
_SKIP_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Candidate:
    path: Path
    size: int
    kind: str


def _sources() -> list[Path]:
    """The source roots, in a fixed order, deduplicated, existing folders only."""
    paths = sysconfig.get_paths()
    roots: list[Path | str] = [
        paths["stdlib"],
        paths["purelib"],
        paths["platlib"],
        *sorted(Path("/usr/lib").glob("python3*")),
        "/usr/lib/python3/dist-packages",
        "/usr/share/doc",
        "/usr/share/icons",
        "/usr/share/pixmaps",
        "/etc",
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/include",
        "/usr/share/perl5",
        "/usr/share/perl",
        "/usr/lib/node_modules",
        "/usr/share/javascript",
        "/usr/share/vim",
        "/usr/share/man",
        "/usr/share/locale",
        "/usr/share/fonts",
        "/usr/share/zoneinfo",
        "/usr/share/java",
        "/usr/lib/jvm",
        "/usr/lib/rabbitmq",
    ]
    seen: set[Path] = set()
    out: list[Path] = []
    for root in roots:
        p = Path(root)
        if p.is_symlink() or not p.is_dir():
            continue
        real = p.resolve()
        if real in seen or any(real.is_relative_to(s) for s in seen):
            continue
        seen.add(real)
        out.append(real)
    return out


def _kind(name: str) -> str:
    """The type key a file is grouped by: its lower-case extension, ``.so`` for ``x.so.1.2``."""
    lower = name.lower()
    if re.search(r"\.so(\.\d+)+$", lower):
        return ".so"
    suffix = Path(lower).suffix
    if not suffix or len(suffix) > 12 or suffix == ".":
        return ""
    if suffix[1:].isdigit():
        return ".<n>"
    return suffix


def _looks_secret(path: Path) -> bool:
    return bool(_SECRET_NAME.search(path.name)) or any(part in _SECRET_DIRS for part in path.parts)


def _walk(root: Path, exclude: Path) -> Iterator[Candidate]:
    """Regular, world-readable, non-empty files <= MAX_BYTES under root (sorted, no symlinks)."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs: list[Path] = []
        for entry in entries:
            try:
                if entry.is_symlink():
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            path = Path(entry.path)
            if stat.S_ISDIR(st.st_mode):
                if entry.name not in _SKIP_DIRS and path != exclude and st.st_mode & stat.S_IROTH:
                    subdirs.append(path)
                continue
            if (
                stat.S_ISREG(st.st_mode)
                and 0 < st.st_size <= MAX_BYTES
                and st.st_mode & stat.S_IROTH
                and os.access(path, os.R_OK)
                and not _looks_secret(path)
            ):
                yield Candidate(path, st.st_size, _kind(entry.name))
        stack.extend(reversed(subdirs))  # depth-first, in sorted order


def _candidates(exclude: Path) -> list[Candidate]:
    out: list[Candidate] = []
    seen: set[Path] = set()
    for root in _sources():
        taken = 0
        for cand in _walk(root, exclude):
            if cand.path in seen:
                continue
            seen.add(cand.path)
            out.append(cand)
            taken += 1
            if taken >= MAX_PER_SOURCE:
                break
    return out


def _select(cands: list[Candidate], n: int, seed: int) -> Iterator[Candidate]:
    """Candidates in selection order: round-robin over types for half of n, then uniform."""
    rng = random.Random(seed)
    groups: dict[str, list[Candidate]] = {}
    for cand in cands:
        groups.setdefault(cand.kind, []).append(cand)
    order = sorted(groups, key=lambda k: (-len(groups[k]), k))
    for kind in order:
        rng.shuffle(groups[kind])
    cursors = dict.fromkeys(order, 0)
    emitted: set[Path] = set()
    coverage = n // 2
    count = 0
    while count < coverage and any(cursors[k] < len(groups[k]) for k in order):
        for kind in order:
            if count >= coverage:
                break
            i = cursors[kind]
            if i < len(groups[kind]):
                cursors[kind] = i + 1
                emitted.add(groups[kind][i].path)
                count += 1
                yield groups[kind][i]
    rest = [c for c in cands if c.path not in emitted]
    rng.shuffle(rest)
    yield from rest


def _safe_name(index: int, name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    stem = _UNSAFE.sub("_", stem).strip("_") or "file"
    ext = _UNSAFE.sub("_", ext)
    safe = f"{stem[:80]}.{ext[:16]}" if ext else stem[:80]
    return f"{index:04d}-{safe}"


def _read(path: Path) -> bytes | None:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError:
        return None
    return data if 0 < len(data) <= MAX_BYTES else None


def _reuse(target: Path, n: int, seed: int) -> list[Path] | None:
    try:
        manifest = json.loads((target / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("version") != MANIFEST_VERSION or manifest.get("n") != n:
        return None
    if manifest.get("seed") != seed:
        return None
    paths: list[Path] = []
    for item in manifest.get("files", []):
        p = target / item["name"]
        try:
            if p.is_symlink() or p.stat().st_size != item["bytes"]:
                return None
        except OSError:
            return None
        paths.append(p)
    return paths if len(paths) == n else None


def _clear(target: Path) -> None:
    """Remove the files a previous build recorded in its manifest (nothing else)."""
    try:
        manifest = json.loads((target / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return
    for item in manifest.get("files", []):
        name = str(item.get("name", ""))
        if name and "/" not in name and name not in (".", ".."):
            (target / name).unlink(missing_ok=True)
    (target / MANIFEST).unlink(missing_ok=True)


def build_corpus(target: Path = DEFAULT_TARGET, n: int = 1000, seed: int = 0) -> list[Path]:
    """Copy ``n`` real files from this machine into ``target``; return their paths in order.

    Deterministic for a given machine, ``n`` and ``seed``; an intact corpus built earlier with
    the same parameters is reused. Raises ``RuntimeError`` when the machine has fewer than
    ``n`` eligible files.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    target = Path(target)
    if (reused := _reuse(target, n, seed)) is not None:
        return reused
    target.mkdir(parents=True, exist_ok=True)
    _clear(target)
    cands = _candidates(exclude=target.resolve())
    digests: set[str] = set()
    files: list[dict[str, Any]] = []
    paths: list[Path] = []
    for cand in _select(cands, n, seed):
        if len(paths) >= n:
            break
        data = _read(cand.path)
        if data is None:
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in digests:
            continue
        digests.add(digest)
        name = _safe_name(len(paths), cand.path.name)
        out = target / name
        out.write_bytes(data)
        files.append({"name": name, "source": str(cand.path), "bytes": len(data), "sha256": digest})
        paths.append(out)
    if len(paths) < n:
        raise RuntimeError(f"only {len(paths)} eligible files on this machine, {n} asked")
    manifest = {"version": MANIFEST_VERSION, "n": n, "seed": seed, "files": files}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", "utf-8")
    return paths


def summarize(paths: list[Path]) -> dict[str, Any]:
    """Count, total bytes and counts by extension (``(none)`` for files without one)."""
    by_ext = Counter(p.suffix.lower() or "(none)" for p in paths)
    return {
        "count": len(paths),
        "bytes": sum(p.stat().st_size for p in paths),
        "by_extension": dict(sorted(by_ext.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", type=Path, default=DEFAULT_TARGET)
    parser.add_argument("-n", "--files", type=int, default=1000, dest="n")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = build_corpus(args.target, n=args.n, seed=args.seed)
    print(json.dumps({"target": str(args.target), **summarize(paths)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
