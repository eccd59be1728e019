"""The pipeline engine and the stage interface."""

from thunderline.flow.engine import Pipeline, dlq_event, topic_for
from thunderline.flow.stage import Outcome, Stage, StageOptions

__all__ = ["Outcome", "Pipeline", "Stage", "StageOptions", "dlq_event", "topic_for"]
