"""Library warnings about one input (pypdf on a truncated PDF) go to our log, not raw stderr."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from thunderline.cli import app

REPO = Path(__file__).resolve().parents[3]


def _truncated_pdf(tmp_path: Path) -> Path:
    data = (REPO / "examples" / "shared-mime-info-spec.pdf").read_bytes()
    path = tmp_path / "truncated.pdf"
    path.write_bytes(data[: len(data) - 1500])  # no %%EOF any more: pypdf warns, then fails
    return path


def test_pypdf_warning_is_a_log_record_at_info_never_raw(tmp_path: Path) -> None:
    pdf = _truncated_pdf(tmp_path)
    runner = CliRunner()
    quiet = runner.invoke(app, ["ingest", "--json", str(pdf)], env={"TL_HOME": str(tmp_path / "a")})
    assert quiet.exit_code == 0, quiet.output
    (record,) = [json.loads(line) for line in quiet.stdout.splitlines()]
    # the record says it: stored without its text (degrade, don't drop), extract failed
    assert record["outcome"] == "degraded", record
    ((failed),) = record["failed"]
    assert failed["stage"] == "extract" and failed["reason"] == "extraction", failed
    assert "EOF marker" not in quiet.stderr  # default level WARNING: the demoted line is hidden

    verbose = runner.invoke(
        app,
        ["ingest", "--json", str(pdf)],
        env={"TL_HOME": str(tmp_path / "b"), "TL_LOG_LEVEL": "INFO"},
    )
    assert verbose.exit_code == 0, verbose.output
    (again,) = [json.loads(line) for line in verbose.stdout.splitlines()]
    # the PDF is read in an extraction worker process: whatever pypdf says there stays in the
    # worker; what reaches stderr is our own log line, with the artifact's correlation id
    assert "EOF marker" not in verbose.stderr or all(
        f"[{again['correlation_id']}]" in line
        for line in verbose.stderr.splitlines()
        if "EOF marker" in line
    )
    lines = [line for line in verbose.stderr.splitlines() if "failed in extract" in line]
    assert lines, verbose.stderr
    assert all(f"INFO thunderline.flow [{again['correlation_id']}]" in line for line in lines)
