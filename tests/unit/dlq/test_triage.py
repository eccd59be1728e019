"""Which DLQ records a replay sends (retryable ones unless forced), with the reason for each
one it skips; durations as people write them. Records come from a real SQLite outcome store."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from thunderline.config import Settings
from thunderline.dlq.record import dead_letter
from thunderline.dlq.triage import (
    SKIP_NO_EVENT,
    SKIP_PERMANENT,
    SKIP_UNKNOWN,
    choose,
    parse_duration,
)
from thunderline.errors import ArtifactTooLargeError, BackendError, OverloadError
from thunderline.events import DLQ_CLASSIFY, INGEST_RECEIVED, CloudEvent, new_event
from thunderline.outcomes import OutcomeStore


def _ingest(name: str) -> CloudEvent:
    artifact = {"name": name, "path": f"/in/{name}", "source": f"file:///in/{name}"}
    return new_event(INGEST_RECEIVED, {"artifact": artifact, "route": ["classify"]})


def test_replay_selection_by_error_type(make_settings: Callable[..., Settings]) -> None:
    flaky = dead_letter("classify", DLQ_CLASSIFY, BackendError("away"), original=_ingest("a"))
    big = dead_letter("classify", DLQ_CLASSIFY, ArtifactTooLargeError("big"), original=_ingest("b"))
    raw = dead_letter("nlp", DLQ_CLASSIFY, BackendError("x"), original=None, raw=b"?")
    odd = dead_letter("classify", DLQ_CLASSIFY, OverloadError("x"), original=_ingest("c"))
    data = {k: v for k, v in odd.data.items() if k != "retryable"}  # an older record
    data["error"] = {**data["error"], "type": "SomeLibraryError"}
    odd = odd.model_copy(update={"data": data})
    with OutcomeStore(make_settings()) as store:
        store.record_many([flaky, big, raw, odd])
        records = store.dlq()
    chosen = choose(records)
    assert [r.id for r in chosen.send] == [flaky.id]
    assert {why: [r.id for r in found] for why, found in chosen.skipped.items()} == {
        SKIP_PERMANENT: [big.id],
        SKIP_NO_EVENT: [raw.id],
        SKIP_UNKNOWN: [odd.id],
    }
    line = chosen.describe_skipped(forced=False)
    assert line.startswith("skipped 3 (") and "1 permanent" in line and "--all" in line
    forced = choose(records, force=True)
    assert sorted(r.id for r in forced.send) == sorted([flaky.id, big.id, odd.id])
    assert forced.skipped_summary() == {SKIP_NO_EVENT: 1}
    assert "--all" not in forced.describe_skipped(forced=True)
    assert choose([]).describe_skipped(forced=False) == ""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("12h", 43200),
        ("30d", 2592000),
        ("2w", 1209600),
        ("1.5D", 129600),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "-1d", "1y", "soon", "1d2h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a number and a unit"):
        parse_duration(text)
