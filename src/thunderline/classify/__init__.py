"""Classification of artifacts with Magika: admission, the classifier and the classify stage."""

from thunderline.classify.admission import (
    Admitted,
    admit,
    check_size,
    open_input,
    resolve_inside,
    store_input,
)
from thunderline.classify.classifier import DISABLED, MagikaClassifier
from thunderline.classify.stage import ClassifyStage, build_route
from thunderline.classify.walk import Candidate, iter_candidates
from thunderline.eventdata import Classification

__all__ = [
    "DISABLED",
    "Admitted",
    "Candidate",
    "Classification",
    "ClassifyStage",
    "MagikaClassifier",
    "admit",
    "build_route",
    "check_size",
    "iter_candidates",
    "open_input",
    "resolve_inside",
    "store_input",
]
