"""Dead letters in one place: the record builder, the store and the replay.

* :mod:`.record` -- :func:`dead_letter` builds every DLQ record; :class:`Subject` says which
  artifact a record (or any terminal event) is about.
* :mod:`.store` -- :class:`DeadLetters`: the DLQ records of the outcome store.
* :mod:`.replay` -- :func:`replay`: claim -> submit -> settle.
* :mod:`.cli` -- ``thunderline dlq list / show / replay``.

The CLI, the HTTP API and the workers all call these.
"""

from thunderline.dlq.record import BrokerDeadLetterError, Subject, dead_letter

__all__ = ["BrokerDeadLetterError", "Subject", "dead_letter"]
