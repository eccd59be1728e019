"""``dlq replay`` on the RabbitMQ bus: claimed replays go to the workers' queues.

``thunderline.dlq`` claims each open record (``open`` -> ``replayed``) and builds the replay
event (same correlation id, a new id and causation link); with an ``amqp://`` bus this sends
each one to the queue of the stage that failed (its routing slip) instead of running the
stages in-process. The collector then records how the artifact ends: a voxel resolves the
record, a new failure is a new open record.
"""

from __future__ import annotations

from collections.abc import Sequence

from thunderline.bus.base import EventBus
from thunderline.bus.factory import open_bus
from thunderline.bus.rabbitmq import RabbitMQBus
from thunderline.config import Settings
from thunderline.events import CloudEvent
from thunderline.flow.engine import topic_for


def is_scale_out(settings: Settings) -> bool:
    return settings.bus.url.startswith(("amqp://", "amqps://"))


async def publish_replay(bus: EventBus, event: CloudEvent, *, block: bool = True) -> str:
    """Publish one replay event (broker-confirmed) to the queue of the stage that failed;
    returns the topic. ``block=False``: a full queue raises ``OverloadError``."""
    topic = topic_for(event)
    if isinstance(bus, RabbitMQBus):
        await bus.publish(topic, event.to_bytes(), block=block)
    else:
        await bus.publish(topic, event.to_bytes())
    return topic


async def publish_replays(settings: Settings, events: Sequence[CloudEvent]) -> list[str]:
    """Publish each replay event (broker-confirmed) to its stage queue; returns the topics."""
    bus = open_bus(settings)
    topics: list[str] = []
    try:
        for event in events:
            topics.append(await publish_replay(bus, event))
    finally:
        await bus.close()
    return topics
