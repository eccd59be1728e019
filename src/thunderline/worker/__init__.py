"""Scale-out: stateless workers and location-free submission over a shared, durable bus."""

from thunderline.worker.doctor import doctor_report
from thunderline.worker.runner import WORKER_STAGES, Worker, parse_stages
from thunderline.worker.settle import final_outcomes
from thunderline.worker.submit import Submitter, wait_outcomes

__all__ = [
    "WORKER_STAGES",
    "Submitter",
    "Worker",
    "doctor_report",
    "final_outcomes",
    "parse_stages",
    "wait_outcomes",
]
