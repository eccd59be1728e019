"""What the pool sends a worker: documents as jobs, jobs grouped into batch lines, time budgets.

Pure functions over plain data (no process, no queue of its own): the pool calls them and
unit tests check them without spaCy. A batch holds up to ``TL_NLP_BATCH_DOCS`` documents and
``TL_NLP_BATCH_CHARS`` characters (at least one document), and no more than an even share of
the queue per worker, so a short queue is spread over every worker; a document marked
``solo`` (it was in a batch whose worker crashed or hung) always goes alone.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass

from thunderline.nlp.result import NlpResult


@dataclass
class Job:
    """One document waiting for its answer."""

    doc_id: str
    #: The document's encoding inside a batch line (:func:`~thunderline.nlp.result.request_item`).
    item: bytes
    chars: int
    future: asyncio.Future[NlpResult]
    #: Send alone: it was in a batch whose worker crashed or hung.
    solo: bool = False

    @property
    def wanted(self) -> bool:
        """Does anyone still wait for this job (the caller may have given up while it queued)?"""
        return not self.future.done()


@dataclass
class Batch:
    """Documents sent on one line, not answered yet, in answer order."""

    jobs: collections.deque[Job]
    #: Documents sent in the batch.
    size: int
    #: The worker's time budget for the whole batch before it redoes it one at a time.
    budget_s: float = 0.0
    #: When the clock for the next answer started (``None``: a batch ahead is not answered).
    clock: float | None = None
    #: The worker's CPU seconds when :attr:`clock` started (``None``: unknown).
    cpu_clock: float | None = None
    answered: int = 0


def build_batch(
    first: Job, take: Callable[[], Job | None], *, cap: int, max_chars: int
) -> tuple[list[Job], Job | None]:
    """The jobs of one batch line, and the job taken that did not fit.

    The batch is ``first``, then what ``take`` gives while the batch holds fewer than ``cap``
    documents and ``max_chars`` characters. Returns the batch and the job taken that did not fit (a
    solo job, or one over the characters), to start the next.
    """
    jobs = [first]
    chars = first.chars
    while len(jobs) < cap:
        more = take()
        if more is None:
            break
        if not more.wanted:
            continue
        if more.solo or chars + more.chars > max_chars:
            return jobs, more
        jobs.append(more)
        chars += more.chars
    return jobs, None


def fair_share(queued: int, workers: int, batch_docs: int) -> int:
    """Most documents for the batch being built, so a short queue keeps every worker busy.

    That is ``batch_docs``, but no more than an even share of the ``queued`` documents (counting the
    one in hand).
    """
    share = -(-(queued + 1) // max(workers, 1))
    return max(1, min(batch_docs, share))


def batch_budget(jobs: list[Job], doc_timeout_s: float, chunk_chars: int) -> float:
    """A batch's time in the worker: one document timeout per chunk's worth of characters.

    A chunk is the longest document the timeout was meant for; the budget is at least one timeout.
    """
    chars = sum(job.chars for job in jobs)
    return doc_timeout_s * max(1, -(-chars // max(chunk_chars, 1)))


def answer_limit(batch: Batch, answer_timeout_s: float) -> float:
    """Seconds the next answer of ``batch`` may take from its clock.

    The first answer of a batch of several also gets the batch's budget, then one document's timeout
    each.
    """
    first_of_many = batch.answered == 0 and batch.size > 1
    return answer_timeout_s + (batch.budget_s if first_of_many else 0)
