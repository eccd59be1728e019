"""Pick the event bus from settings and the ingestor that goes with it.

The bus is ``memory://`` (in-process, the default) or ``amqp://`` (RabbitMQ, the scale-out bus), and
the :class:`~thunderline.ingestor.Ingestor` matches it. This is the only place that looks at the
URL: everything else asks the bus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from thunderline.bus.base import DropHandler, EventBus
from thunderline.bus.memory import MemoryBus
from thunderline.config import Settings
from thunderline.errors import ConfigError
from thunderline.events import CloudEvent

if TYPE_CHECKING:
    from thunderline.ingestor import Ingestor

_BROKER_SCHEMES = ("amqp://", "amqps://")


def open_bus(settings: Settings, on_drop: DropHandler | None = None) -> EventBus:
    """The bus ``settings.bus.url`` names; ``on_drop`` gets what a ``drop_oldest`` queue drops.

    ``memory://`` gives a :class:`MemoryBus` bounded by ``TL_QUEUE_MAX`` with
    ``TL_OVERFLOW_POLICY``. ``amqp://`` / ``amqps://`` give a
    :class:`~thunderline.bus.rabbitmq.RabbitMQBus` (prefetch ``TL_MAX_DEMAND``, delivery limit
    ``TL_MAX_ATTEMPTS``, ``x-max-length`` ``TL_QUEUE_MAX``; it never drops, so ``on_drop`` is
    not used). Anything else is a :class:`ConfigError` naming what is supported.
    """
    url = settings.bus.url
    if url.startswith("memory://"):
        return MemoryBus(settings.queue_max, settings.overflow_policy, on_drop)
    if url.startswith(_BROKER_SCHEMES):
        from thunderline.bus.rabbitmq import RabbitMQBus

        return RabbitMQBus(
            url,
            prefetch=settings.max_demand,
            max_attempts=settings.max_attempts,
            queue_max=settings.queue_max,
            prefix=settings.bus.queue_prefix,
            reconnect_timeout_s=settings.bus.reconnect_timeout_s,
        )
    raise ConfigError(
        f"unsupported bus URL {url!r}: use memory:// (in-process) or amqp://… (RabbitMQ)"
    )


def keeps_messages(settings: Settings) -> bool:
    """Whether the configured bus keeps a message after the process that sent it is gone.

    True for a broker's durable queue; false for the in-process bus, which loses it with its run.
    """
    return settings.bus.url.startswith(_BROKER_SCHEMES)


def open_ingestor(
    settings: Settings,
    *,
    on_outcome: Callable[[CloudEvent], object] | None = None,
    source: str | None = None,
) -> Ingestor:
    """The ingestor of ``settings.bus.url``.

    On ``memory://`` it runs the stages in this process (:class:`~thunderline.runtime.Runtime`); on
    a broker it is the location-free :class:`~thunderline.worker.submit.Submitter` (the workers run
    the stages). ``on_outcome`` sees each artifact's end; ``source`` names the submitter in events.
    """
    from thunderline.ingestor import SUBMIT_SOURCE
    from thunderline.runtime import Runtime
    from thunderline.worker.submit import Submitter

    if settings.bus.url.startswith(_BROKER_SCHEMES):
        return Submitter(settings, source=source or SUBMIT_SOURCE, on_outcome=on_outcome)
    return Runtime(settings, on_terminal=on_outcome, source=source or SUBMIT_SOURCE)
