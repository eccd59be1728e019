"""Outlook .msg readers side by side on the real messages in tests/fixtures/legacy.

Each reader that imports in the running interpreter is timed (fastest of 9 in process CPU
time, after a warm-up)
and asked for what the extractor needs: subject, sender, body characters, attachments
(an attached Outlook message counts). Run it with the project's venv (``ours``:
``thunderline.extract.formats.legacy`` over olefile, and python-oxmsg if installed) and with a
scratch venv holding ``extract-msg`` (GPL-3.0, so never in the project's venv)::

    python benchmarks/msg_readers.py
    /tmp/msgvenv/bin/python benchmarks/msg_readers.py   # extract-msg==0.57.0 python-oxmsg==0.0.2

The last line is one JSON object per reader and file.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FILES = sorted(
    (Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "legacy").glob("*.msg")
)


def _ours(path: Path) -> dict[str, Any]:
    from thunderline.extract.base import ExtractContext
    from thunderline.extract.formats.legacy import extract_msg

    with tempfile.TemporaryDirectory() as tmp:
        found = extract_msg(path, ExtractContext(label="outlook", parts_dir=Path(tmp)))
    return {
        "subject": found.metadata.title,
        "sender": found.raw.get("sender_smtp") or found.raw.get("sender_email"),
        "body_chars": len(found.text),
        "attachments": len(found.parts),
    }


def _oxmsg(path: Path) -> dict[str, Any]:
    from oxmsg import Message

    msg = Message.load(str(path))
    return {
        "subject": msg.subject,
        "sender": msg.sender,
        "body_chars": len(msg.body or msg.html_body or ""),
        "attachments": sum(1 for a in msg.attachments if a.file_bytes is not None),
    }


def _extract_msg(path: Path) -> dict[str, Any]:
    import extract_msg

    with extract_msg.openMsg(str(path)) as msg:
        return {
            "subject": msg.subject,
            "sender": msg.sender,
            "body_chars": len(msg.body or ""),
            "attachments": len(msg.attachments),
        }


READERS: dict[str, tuple[str, Callable[[Path], dict[str, Any]]]] = {
    "ours (olefile)": ("olefile", _ours),
    "python-oxmsg": ("python-oxmsg", _oxmsg),
    "extract-msg": ("extract-msg", _extract_msg),
}


def main() -> None:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Any] = {}
    for name, (dist, reader) in READERS.items():
        try:
            reader(FILES[0])
        except ImportError as exc:
            out[name] = {"missing": str(exc)}
            continue
        try:
            release = version(dist)
        except PackageNotFoundError:
            release = "unknown"
        per_file: dict[str, Any] = {}
        for path in FILES:
            best = float("inf")
            try:
                for _ in range(9):
                    t0 = time.process_time()  # CPU time: the machine is shared
                    found = reader(path)
                    best = min(best, time.process_time() - t0)
                per_file[path.name] = {**found, "ms": round(best * 1000, 2)}
            except Exception as exc:  # a reader that fails on a real file is a figure too
                per_file[path.name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        out[name] = {"version": release, "files": per_file}
    print(json.dumps({"name": "msg_readers", "python": sys.version.split()[0], "readers": out}))


if __name__ == "__main__":
    sys.exit(main())
