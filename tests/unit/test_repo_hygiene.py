"""The repository names no path of a particular machine (a home folder, the build machine's
work tree, a local package mirror): every path in it is relative or a system path that a
package creates on any machine (``/usr/share/...``, ``/usr/bin/chromium``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|home|Users|opt|mnt)/[\w.-]+")


def _tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = [REPO / name for name in out.decode().split("\0") if name]
    return [f for f in files if f.is_file() and f.suffix not in {".lock"}]


def test_no_file_names_a_machine_path() -> None:
    hits = []
    for path in _tracked_text_files():
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (models, images, archives)
        for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                hits.append(f"{path.relative_to(REPO)}:{lineno}: {line.strip()[:120]}")
    assert hits == []


def test_the_pattern_catches_what_it_is_for() -> None:
    # built from parts, so that this file itself names no such path
    assert MACHINE_PATH.search("default key /" + "work/signing/model_signing_key.pem")
    assert MACHINE_PATH.search("see /" + "root/.pyenv/versions/3.11.7/lib")
    assert not MACHINE_PATH.search("../shared/signing/model_signing_key.pem")
    assert not MACHINE_PATH.search("/usr/share/datasets/fashion-mnist")
