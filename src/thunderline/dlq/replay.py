"""The one replay: claim -> submit -> settle, for the CLI, the API and the console alike.

A replay claims the record first (``open`` -> ``replayed``, atomically in the outcome store),
so of two replays of one record only one sends anything; it then submits a new event derived
from the original (same correlation id, a new id and a causation link) through the
:class:`~thunderline.ingestor.Ingestor`, which sends it to the stage that failed, in this
process or to the workers. A submission that fails releases the claim. The collector settles
the rest: a voxel of the same artifact resolves the record, a new failure is a new open record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from thunderline.dlq.record import Subject
from thunderline.dlq.store import DeadLetters
from thunderline.eventdata import voxel_of
from thunderline.events import CloudEvent
from thunderline.outcomes import OPEN, OutcomeRecord

REPLAY_SOURCE = "urn:thunderline:replay"

#: Sends an event into the pipeline (``Ingestor.submit``).
Send = Callable[[CloudEvent], Awaitable[object]]


class NotReplayableError(ValueError):
    """The record holds no original event (the raw message was not an event)."""


def replay_event(letter: OutcomeRecord) -> CloudEvent:
    """The event a replay of ``letter`` sends, derived from the original event.

    A record that names a voxel (the artifact was stored without the failed stage's result)
    asks the package stage to complete that voxel (``data.voxel_id``), not to store a second
    one.
    """
    original = Subject.of(letter.event).original
    if original is None:
        raise NotReplayableError(f"DLQ record {letter.id} has no original event to replay")
    data = original.data
    voxel_id = voxel_of(letter.event)
    if voxel_id is not None:
        data = {**data, "voxel_id": voxel_id}
    return original.derive(original.type, data, source=REPLAY_SOURCE)


async def replay(letters: DeadLetters, letter: OutcomeRecord, send: Send) -> CloudEvent | None:
    """Claim, submit and settle one record.

    Returns the replay event, ``None`` when the record was not open (already claimed).
    Raises :class:`NotReplayableError` for a record without an original event, and whatever
    ``send`` raises (the claim is released first).
    """
    event = replay_event(letter)
    if letter.status != OPEN or not letters.claim(letter.id, event.id):
        return None
    try:
        await send(event)
    except BaseException:
        letters.release(letter.id)
        raise
    return event
