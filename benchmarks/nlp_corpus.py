"""Real ~1 KB English documents built from text on this machine (no download).

Sources, in a fixed order: the licence texts in ``/usr/share/common-licenses``, the Debian
package documents in ``/usr/share/doc`` (``copyright``, ``README*``, ``*.txt``), then the
docstrings of the Python standard library. Texts are cut into chunks of about ``size`` bytes
on paragraph, then sentence, then word boundaries; exact duplicates (licence boilerplate
repeats a lot) are dropped. The same machine gives the same corpus every run.

Run ``.venv/bin/python benchmarks/nlp_corpus.py OUT_DIR`` to write the files, or import
:func:`build_corpus`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from thunderline.testing.samples import text_corpus as build_corpus

__all__ = ["build_corpus"]


def main() -> None:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "nlp-corpus")
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, doc in enumerate(build_corpus()):
        (out_dir / f"doc-{i:04d}.txt").write_text(doc, "utf-8")
    print(f"wrote 1000 documents to {out_dir}")


if __name__ == "__main__":
    main()
