"""The event bus protocol: every backend (in-process, Redis Streams) implements it.

Messages are encoded events (bytes). A topic is a stage name (or ``terminal`` / ``dlq``).
``pull`` hands out :class:`Delivery` objects; a delivery is acknowledged only after the stage
has published its output (at-least-once). The engine decodes bytes into events itself, so a
malformed message reaches the DLQ the same way on every backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


@runtime_checkable
class EventBus(Protocol):
    """What the pipeline engine needs from a bus backend (``tests/integration/contracts``
    runs the same suite over every implementation)."""

    @property
    def durable(self) -> bool:
        """Whether unacknowledged messages survive the process (a broker). The engine
        dead-letters what is left on a non-durable bus at shutdown, so nothing vanishes."""
        ...

    async def publish(self, topic: str, payload: bytes) -> str:
        """Append one message to ``topic``; returns its message id. May block (backpressure)."""
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
        """Messages waiting (not yet pulled) on ``topic``."""
        ...

    async def close(self) -> None: ...
