"""Pick the event bus from settings: ``memory://`` (in-process, the default)."""

from __future__ import annotations

from thunderline.bus.base import DropHandler, EventBus
from thunderline.bus.memory import MemoryBus
from thunderline.config import Settings
from thunderline.errors import ConfigError


def open_bus(settings: Settings, on_drop: DropHandler | None = None) -> EventBus:
    """The bus ``settings.bus_url`` names; ``on_drop`` gets what a ``drop_oldest`` queue drops.

    ``memory://`` gives a :class:`MemoryBus` bounded by ``TL_QUEUE_MAX`` with
    ``TL_OVERFLOW_POLICY``. Anything else is a :class:`ConfigError` naming what is supported.
    """
    url = settings.bus_url
    if url.startswith("memory://"):
        return MemoryBus(settings.queue_max, settings.overflow_policy, on_drop)
    raise ConfigError(f"unsupported bus URL {url!r}: use memory:// (the in-process bus)")
