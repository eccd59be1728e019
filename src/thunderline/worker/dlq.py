"""``dlq replay`` on the RabbitMQ bus: claimed replays go to the workers' queues.

``thunderline.dlq`` claims each open record (``open`` -> ``replayed``) and builds the replay
event (same correlation id, a new id and causation link); with an ``amqp://`` bus this sends
each one to the queue of the stage that failed (its routing slip) instead of running the
stages in-process. The collector then records how the artifact ends: a voxel resolves the
record, a new failure is a new open record.
"""

from __future__ import annotations

from collections.abc import Sequence

from thunderline.bus.factory import open_bus
from thunderline.config import Settings
from thunderline.events import CloudEvent
from thunderline.flow.engine import topic_for


def is_scale_out(settings: Settings) -> bool:
    return settings.bus_url.startswith(("amqp://", "amqps://"))


async def publish_replays(settings: Settings, events: Sequence[CloudEvent]) -> list[str]:
    """Publish each replay event (broker-confirmed) to its stage queue; returns the topics."""
    bus = open_bus(settings)
    topics: list[str] = []
    try:
        for event in events:
            topic = topic_for(event)
            await bus.publish(topic, event.to_bytes())
            topics.append(topic)
    finally:
        await bus.close()
    return topics
