"""Coverage: which files of the repository's corpus yield text and metadata, by Magika label.

Files: ``examples/`` (the demo files) and the multi-format corpus
(:func:`thunderline.testing.corpus.build_corpus`). Each is classified by Magika and read by
its extractor in process (OCR on). ``baseline`` counts the files that gave text before issue
18: the labels the former in-process extractor read (txt, markdown, html, pdf, rtf) on the
former NLP routes; ``ours`` the files that give text now, and those that give metadata.
Tika's figures are not included (no JVM run here). The last line is one JSON object;
``ratio`` = files with text now / before.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from thunderline.extract.base import ExtractContext
from thunderline.extract.registry import extractor_for
from thunderline.testing.corpus import build_corpus

ROOT = Path(__file__).resolve().parents[1]
#: Labels whose text reached NLP before issue 18 (routes txt, markdown, html, pdf, rtf).
BEFORE = {"txt", "markdown", "html", "pdf", "rtf"}


def main() -> None:
    from magika import Magika

    magika = Magika()
    rows: dict[str, dict[str, int]] = defaultdict(
        lambda: {"files": 0, "text": 0, "metadata": 0, "before": 0}
    )
    with tempfile.TemporaryDirectory() as tmp:
        build_corpus(Path(tmp))
        paths = sorted(
            p for p in (ROOT / "examples").iterdir() if p.is_file() and p.name != "README.md"
        )
        paths += sorted(Path(tmp).iterdir())
        for path in paths:
            out = magika.identify_path(path).output
            extractor = extractor_for(out.label, out.group, out.is_text)
            try:
                found = extractor.run(path, ExtractContext(label=out.label, ocr=True))
                has_text = bool(found.text.strip())
                has_meta = not found.metadata.is_empty()
            except Exception:
                has_text = has_meta = False
            row = rows[out.label]
            row["files"] += 1
            row["text"] += has_text
            row["metadata"] += has_meta
            row["before"] += out.label in BEFORE and has_text
    table = {label: dict(values) for label, values in sorted(rows.items())}
    before = sum(r["before"] for r in table.values())
    now = sum(r["text"] for r in table.values())
    result: dict[str, Any] = {
        "name": "extract_coverage",
        "baseline": {"files_with_text": before, "what": "labels read before issue 18"},
        "ours": {
            "files": sum(r["files"] for r in table.values()),
            "files_with_text": now,
            "files_with_metadata": sum(r["metadata"] for r in table.values()),
            "by_label": table,
        },
        "ratio": round(now / max(before, 1), 3),
        "goal": 1.0,
        "unit": "files with text now / before",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
