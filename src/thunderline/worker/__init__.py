"""Scale-out mode: stateless workers, the collector and location-free submission over RabbitMQ."""

from thunderline.worker.collector import Collector
from thunderline.worker.doctor import doctor_report
from thunderline.worker.runner import WORKER_STAGES, Worker, parse_stages
from thunderline.worker.settle import final_outcomes
from thunderline.worker.submit import Submitter, wait_outcomes

__all__ = [
    "WORKER_STAGES",
    "Collector",
    "Submitter",
    "Worker",
    "doctor_report",
    "final_outcomes",
    "parse_stages",
    "wait_outcomes",
]
