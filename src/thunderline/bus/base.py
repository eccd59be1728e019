"""The event bus protocol: every backend (in-process, RabbitMQ) implements all of it.

Messages are encoded events (bytes). A topic is a stage name (or ``terminal`` / ``dlq``).
``pull`` hands out :class:`Delivery` objects; a delivery is acknowledged only after the stage
has published its output (at-least-once). The engine decodes bytes into events itself, so a
malformed message reaches the DLQ the same way on every backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

TERMINAL_TOPIC = "terminal"
DLQ_TOPIC = "dlq"

#: Called with the encoded message a ``drop_oldest`` queue pushed out.
DropHandler = Callable[[str, bytes], Awaitable[None]]


@dataclass(eq=False)
class Delivery:
    """One message handed to a consumer."""

    topic: str
    payload: bytes
    message_id: str
    delivery_count: int = 1
    acked: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class QueueStats:
    """One topic's queue as its backend sees it now: what waits there and who consumes it."""

    topic: str
    #: The backend's name of the queue (RabbitMQ: ``<prefix>.<topic>``; in-process: the topic).
    queue: str
    #: Messages waiting (ready, not handed out to a consumer).
    messages: int
    #: Consumers attached now (RabbitMQ: the broker's count; in-process: the pullers seen).
    consumers: int

    @property
    def unserved(self) -> bool:
        """Messages wait and nothing consumes them: they wait until a consumer appears."""
        return self.messages > 0 and self.consumers == 0


@runtime_checkable
class EventBus(Protocol):
    """Everything the runtime needs from a bus backend.

    The engine, the collector, the workers, the submitters and ``doctor`` reach a bus only through
    this protocol and never ask which backend it is (``tests/integration/contracts`` runs one suite
    over each).

    Methods a backend has nothing to do for are no-ops there (as Broadway's optional
    ``prepare_for_draining``): the in-process bus connects, declares and drains nothing.
    """

    @property
    def durable(self) -> bool:
        """Whether messages live outside this process (a broker shared by workers).

        The engine dead-letters what is left on a non-durable bus at shutdown, so nothing vanishes,
        and a worker (which other processes feed) needs a durable bus.
        """
        ...

    def describe(self) -> str:
        """The backend and where it is, without secrets (``doctor``, ``/readyz``)."""
        ...

    async def connect(self) -> None:
        """Open the connection now (a broker; retried for a while); a no-op in-process."""
        ...

    async def declare(self, topics: Sequence[str]) -> None:
        """Make sure the queues of ``topics`` exist before any traffic (no-op in-process)."""
        ...

    async def publish(
        self, topic: str, payload: bytes, *, block: bool = True, bounded: bool = True
    ) -> str:
        """Append one message to ``topic``; returns its message id.

        A full queue makes it wait (``block``, back-pressure) or raise
        :class:`~thunderline.errors.OverloadError` (``block=False``: an API answers 429).
        ``bounded=False`` appends even to a full queue, neither waiting nor dropping: a stage's
        output re-entering an upstream stage (archive members back into ``classify``), which
        must not wait on a queue its own stage's wait keeps full (a cycle of blocking bounded
        queues deadlocks). What that adds is bounded by the demand and the archive limits that
        produced it. A broker that bounds every publish (RabbitMQ) may ignore it.
        """
        ...

    async def pull(
        self, topic: str, consumer: str, max_count: int, timeout: float
    ) -> list[Delivery]:
        """Up to ``max_count`` messages for ``consumer``; waits at most ``timeout`` seconds."""
        ...

    async def ack(self, delivery: Delivery) -> None:
        """Mark a delivery done; it will not be delivered again."""
        ...

    def depth(self, topic: str) -> int:
        """Messages waiting (not yet pulled) on ``topic``, as last seen."""
        ...

    async def queue_depth(self, topic: str) -> int:
        """Messages waiting on ``topic`` now (a broker is asked)."""
        ...

    async def queue_stats(self, topic: str) -> QueueStats:
        """Messages waiting on ``topic`` and its consumers now.

        A broker is asked; a queue that does not exist has neither.
        """
        ...

    @property
    def held(self) -> int:
        """Deliveries this process holds: handed out (or buffered) and not acknowledged."""
        ...

    async def prepare_for_draining(self) -> None:
        """Stop taking new messages from the backend (a broker's consumers are cancelled).

        What is held can still be acknowledged. A no-op in-process.
        """
        ...

    async def close(self) -> None:
        """Release the backend; unacknowledged messages of a broker go back to their queues."""
        ...
