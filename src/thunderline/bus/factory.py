"""Pick the event bus from settings: ``memory://`` (in-process, the default) or ``amqp://``
(RabbitMQ, the scale-out bus)."""

from __future__ import annotations

from thunderline.bus.base import DropHandler, EventBus
from thunderline.bus.memory import MemoryBus
from thunderline.config import Settings
from thunderline.errors import ConfigError


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
    if url.startswith(("amqp://", "amqps://")):
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
