"""Event bus backends behind one protocol (:class:`EventBus`)."""

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC, Delivery, EventBus
from thunderline.bus.factory import open_bus
from thunderline.bus.memory import MemoryBus

__all__ = ["DLQ_TOPIC", "TERMINAL_TOPIC", "Delivery", "EventBus", "MemoryBus", "open_bus"]
