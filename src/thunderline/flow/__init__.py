"""The pipeline engine and the stage interface."""

from thunderline.flow.engine import Pipeline, topic_for
from thunderline.flow.stage import Outcome, Stage, StageOptions

__all__ = ["Outcome", "Pipeline", "Stage", "StageOptions", "topic_for"]
