"""Dynamic batching: concurrent requests for one model run as one ONNX Runtime call.

A :class:`DynamicBatcher` owns one worker thread and a queue. The thread takes the first
waiting request, then gathers more up to the policy's target size, waiting at most until
``max_queue_delay_s`` after the first one arrived, checks each request against the I/O spec (a
bad one fails alone), concatenates the good ones along the batch axis, runs them once and
splits the outputs back. A model with a fixed batch dimension runs its requests one by one
(and the thread does not wait to gather). Callers get a :class:`concurrent.futures.Future`;
``infer`` blocks, ``infer_async`` awaits it on the event loop. ONNX Runtime releases the GIL,
so the event loop keeps running while a batch runs.

Whether a bigger batch is cheaper per item depends on the machine and its load (anchors: 490
img/s at batch 1, 397 at 8 on one run; 177 to 238 from 1 to 8 on another), and a measurement
at load time is one noisy sample: a cap calibrated at start-up picked 2 on one run and 4 on the
next. So the target size is learnt while serving (:class:`BatchPolicy`, in the spirit of
Triton's preferred batch sizes plus max queue delay): the per-item cost of every batch size
that really runs is tracked (moving average), the target is the size with the lowest per-item
cost, the preferred sizes (powers of two up to ``max_batch_size``) are tried first,
largest first, going down only while halving the batch makes it cheaper per item, and a
neighbour of the target is retried now and then so a change of load is
noticed. The cost is the process CPU time of the run (``time.process_time``: ONNX Runtime's
pool threads are in it), not its wall time: on a shared machine the wall time of a batch
follows the neighbours (the MobileNetV2 fixture measured 9.8 to 18 ms per image at batch 2
within a minute, at a load average of 13), its CPU time does not (4.40 to 4.71), and CPU is
what a file costs; when the cores are saturated the cheapest size is also the fastest. A
policy that learnt from wall time picked 4 or 8 in one run in five, at 5 to 20 % more CPU per
image than 2. The thread waits for a batch to fill only while waiting pays: when the last waits
brought no request (one caller), it dispatches at once and tries waiting again now and then.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thunderline.errors import ThunderlineError
from thunderline.ml.errors import InferenceError, ModelInputError, ModelUnavailableError
from thunderline.ml.model import Inputs, OnnxModel, record_failure, record_success
from thunderline.ml.tensors import InferenceResult
from thunderline.obs import metrics

_log = logging.getLogger("thunderline.ml")

ModelSource = OnnxModel | Callable[[], OnnxModel]


@dataclass
class _Request:
    inputs: Inputs
    correlation_id: str | None
    future: Future[InferenceResult] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class _Control:
    fn: Callable[[], Any]
    future: Future[Any] = field(default_factory=Future)


_STOP = object()


def _settle(future: Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:  # the caller cancelled
        pass


class BatchPolicy:
    """The adaptive batch size: preferred sizes tried first, then the best measured size.

    Only the batcher thread calls it (no locking). ``adaptive=False`` always targets
    ``max_batch_size`` (the plain Triton behaviour).

    Args:
        max_batch_size: Largest batch.
        adaptive: Learn the target from measured per-item costs (CPU, else wall time).
        samples: Measurements of a size (after one warm-up run) before exploration moves on.
        explore_every: Batches between two retries of a neighbour of the target.
        alpha: Weight of a new measurement in the moving averages.
    """

    def __init__(
        self,
        max_batch_size: int,
        *,
        adaptive: bool = True,
        samples: int = 3,
        explore_every: int = 40,
        alpha: float = 0.25,
    ) -> None:
        self.max_batch_size = max(1, max_batch_size)
        self.adaptive = adaptive
        self.samples = max(1, samples)
        self.explore_every = max(2, explore_every)
        self.alpha = alpha
        sizes = []
        size = 1
        while size < self.max_batch_size:
            sizes.append(size)
            size *= 2
        sizes.append(self.max_batch_size)
        #: Preferred sizes, largest first.
        self.preferred: tuple[int, ...] = tuple(sorted(set(sizes), reverse=True))
        #: Per-item cost in seconds (moving average; CPU when the batcher gives it, else
        #: wall) by batch size, and how many runs fed it.
        self.cost: dict[int, float] = {}
        #: What ``cost`` holds: "cpu" (process CPU-seconds of the runs) or "wall".
        self.measure = "cpu"
        self.runs: dict[int, int] = {}
        self.batches = 0
        self._explore: int | None = None
        self._explore_left = 0
        self._flip = False
        #: Moving average of "the last wait brought at least one more request" (0..1).
        self.wait_yield = 1.0
        self._skipped_waits = 0

    def _best(self) -> int | None:
        measured = [s for s in self.cost if self.runs.get(s, 0) > self.samples // 2]
        if not measured:
            return None
        return min(measured, key=lambda s: (self.cost[s], -s))

    def target(self) -> int:
        """The batch size to gather up to now."""
        if not self.adaptive:
            return self.max_batch_size
        if self._explore is not None:
            return self._explore
        done: list[int] = []  # warm-up: preferred sizes, largest first, while smaller pays
        for size in self.preferred:
            if self._unreachable(size):
                continue
            if self.runs.get(size, 0) < self.samples + 1:
                return size
            done.append(size)
            if len(done) >= 2 and self.cost.get(done[-1], 0.0) > self.cost.get(done[-2], 0.0):
                break  # halving the batch made it slower per item: stop going down
        best = self._best()
        return best if best is not None else self.max_batch_size

    def _unreachable(self, size: int) -> bool:
        """Gathering ``size`` was tried and never reached (too few callers)."""
        return self.runs.get(-size, 0) >= self.samples and self.runs.get(size, 0) == 0

    def observe(self, size: int, run_s: float, wanted: int, cpu_s: float | None = None) -> None:
        """Record a run of ``size`` requests (gathered for ``wanted``).

        ``cpu_s``: the process CPU-seconds the run took (ONNX Runtime's pool threads are in
        it, other processes are not), the cost the policy minimises; without it the wall
        time ``run_s`` is the cost.
        """
        self.batches += 1
        if size < wanted:
            self.runs[-wanted] = self.runs.get(-wanted, 0) + 1  # a target not reached
        count = self.runs.get(size, 0) + 1
        self.runs[size] = count
        if count > 1:  # the first run of a shape pays its allocations
            self.measure = "wall" if cpu_s is None else "cpu"
            per_item = (run_s if cpu_s is None else cpu_s) / size
            old = self.cost.get(size)
            self.cost[size] = per_item if old is None else old + self.alpha * (per_item - old)
        if not self.adaptive:
            return
        if self._explore is not None:
            self._explore_left -= 1
            if self._explore_left <= 0:
                self._explore = None
        elif self.batches % self.explore_every == 0:
            best = self._best()
            if best is not None:
                self._flip = not self._flip
                order = (best * 2, best // 2) if self._flip else (best // 2, best * 2)
                nxt = next((s for s in order if 1 <= s <= self.max_batch_size), None)
                if nxt is not None:
                    self._explore, self._explore_left = nxt, 2

    def should_wait(self) -> bool:
        """Whether to wait for the batch to fill (it paid lately, or it is time to try)."""
        if self.wait_yield >= 0.25:
            return True
        self._skipped_waits += 1
        return self._skipped_waits % 16 == 0

    def waited(self, gained: bool) -> None:
        """Record whether a wait brought at least one more request."""
        self.wait_yield += 0.2 * (float(gained) - self.wait_yield)

    def snapshot(self) -> dict[str, Any]:
        """The learnt state (for benchmarks and health output)."""
        return {
            "target": self.target(),
            "per_item_ms": {s: round(c * 1000, 3) for s, c in sorted(self.cost.items())},
            "cost": self.measure,
            "runs": {s: n for s, n in sorted(self.runs.items()) if s > 0},
            "wait_yield": round(self.wait_yield, 3),
        }


def calibrate_batch_cap(
    model: OnnxModel, max_batch_size: int, *, reps: int = 5, tolerance: float = 1.05
) -> int:
    """The batch size to cap at: the smallest power of two near the best per-item time.

    Near means within ``tolerance`` of the best per-item time, measured on dummy inputs (1 when
    the batch dimension is fixed).

    One measurement at one moment: kept for ``thunderline doctor``-style checks; the batcher
    itself learns its size while serving (:class:`BatchPolicy`).
    """
    if not model.spec.dynamic_batch or max_batch_size <= 1:
        return 1
    sizes = []
    size = 1
    while size <= max_batch_size:
        sizes.append(size)
        size *= 2
    per_item: dict[int, float] = {}
    for size in sizes:
        feeds = model.spec.dummy_inputs(size)
        model.run_checked(feeds)  # warm-up (allocations for this shape)
        best = min(model.run_checked(feeds)[1] for _ in range(reps))
        per_item[size] = best / size
    fastest = min(per_item.values())
    cap = next(s for s in sizes if per_item[s] <= fastest * tolerance)
    _log.info(
        "model %s: batch cap %d (per-item ms %s)",
        model.name,
        cap,
        {s: round(t * 1000, 3) for s, t in per_item.items()},
    )
    return cap


class DynamicBatcher:
    """Gathers concurrent requests for one model and runs them as batches in one thread.

    Args:
        model: the model, or a callable returning the current model (the supervisor's, which
            may restart it or raise :class:`ModelUnavailableError`).
        max_batch_size: most requests per run.
        max_queue_delay_s: longest wait after the first request for others to join.
        name: model name for metrics (default: the model's name).
        on_error: called in the batcher thread when ONNX Runtime fails on valid inputs.
        on_success: called in the batcher thread after each successful run.
        batch_cap: a fixed cap below ``max_batch_size`` (turns the adaptive policy off).
        adaptive: learn the batch size while serving (:class:`BatchPolicy`); ``False``
            always gathers up to the cap.
    """

    def __init__(
        self,
        model: ModelSource,
        *,
        max_batch_size: int = 8,
        max_queue_delay_s: float = 0.002,
        name: str | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_success: Callable[[], None] | None = None,
        batch_cap: int | None = None,
        adaptive: bool = True,
    ) -> None:
        if isinstance(model, OnnxModel):
            fixed = model
            self._get_model: Callable[[], OnnxModel] = lambda: fixed
            self.name = name or model.name
            self._dynamic: bool | None = model.spec.dynamic_batch
        else:
            self._get_model = model
            self.name = name or "model"
            self._dynamic = None
        self.max_batch_size = max(1, max_batch_size)
        self.max_queue_delay_s = max(0.0, max_queue_delay_s)
        self.policy = BatchPolicy(
            min(self.max_batch_size, batch_cap or self.max_batch_size),
            adaptive=adaptive and batch_cap is None,
        )
        self.on_error = on_error
        self.on_success = on_success
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{self.name}", daemon=True)
        self._thread.start()

    # ---- public API ---------------------------------------------------------------------
    def submit(
        self, inputs: Inputs, *, correlation_id: str | None = None
    ) -> Future[InferenceResult]:
        """Queue one request; its future resolves to the result or the typed error."""
        request = _Request(inputs, correlation_id)
        if self._closed:
            _settle(request.future, error=ModelUnavailableError(f"model {self.name} is closed"))
        else:
            self._queue.put(request)
        return request.future

    def infer(
        self, inputs: Inputs, *, correlation_id: str | None = None, timeout: float | None = None
    ) -> InferenceResult:
        """Blocking inference through the batcher."""
        return self.submit(inputs, correlation_id=correlation_id).result(timeout)

    async def infer_async(
        self, inputs: Inputs, *, correlation_id: str | None = None
    ) -> InferenceResult:
        """Inference through the batcher without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(inputs, correlation_id=correlation_id))

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` in the batcher thread between batches (probes, restarts)."""
        control = _Control(fn)
        if self._closed:
            _settle(control.future, error=ModelUnavailableError(f"model {self.name} is closed"))
        else:
            self._queue.put(control)
        return control.future

    @property
    def batch_cap(self) -> int:
        """The batch size the policy gathers up to now."""
        return self._limit()

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch."""
        return self._queue.qsize()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after the requests already queued; later ones fail fast."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # ---- the batcher thread -------------------------------------------------------------
    def _limit(self) -> int:
        if self._dynamic is False:
            return 1
        return max(1, min(self.max_batch_size, self.policy.target()))

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if isinstance(item, _Control):
                self._run_control(item)
                continue
            batch: list[_Request] = [item]
            controls: list[_Control] = []
            stop = False
            limit = self._limit()
            deadline = item.enqueued + self.max_queue_delay_s
            waiting: bool | None = None  # None: not decided yet
            gained = False
            while len(batch) < limit:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    wait = deadline - time.perf_counter()
                    if wait <= 0:
                        break
                    if waiting is None:
                        waiting = self.policy.should_wait()
                    if not waiting:
                        break
                    try:
                        nxt = self._queue.get(timeout=wait)
                    except queue.Empty:
                        break
                    gained = True
                if nxt is _STOP:
                    stop = True
                    break
                if isinstance(nxt, _Control):
                    controls.append(nxt)
                else:
                    batch.append(nxt)
            if waiting:
                self.policy.waited(gained)
            try:
                self._run(batch, limit)
            except BaseException as exc:  # never let the thread die with requests waiting
                _log.exception("batcher %s failed", self.name)
                for request in batch:
                    _settle(request.future, error=InferenceError(f"batcher failed: {exc}"))
            for control in controls:
                self._run_control(control)
            if stop:
                break
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Request | _Control):
                _settle(item.future, error=ModelUnavailableError(f"model {self.name} is closed"))

    @staticmethod
    def _run_control(control: _Control) -> None:
        try:
            _settle(control.future, result=control.fn())
        except BaseException as exc:
            _settle(control.future, error=exc)

    def _fail(self, request: _Request, exc: BaseException) -> None:
        record_failure(
            self.name, exc, time.perf_counter() - request.enqueued, request.correlation_id
        )
        _settle(request.future, error=exc)

    def _run(self, batch: list[_Request], wanted: int) -> None:
        pending = list(batch)
        while pending:
            try:
                model = self._get_model()
            except BaseException as exc:
                err = exc if isinstance(exc, ThunderlineError) else InferenceError(str(exc))
                for request in pending:
                    self._fail(request, err)
                return
            self._dynamic = model.spec.dynamic_batch
            valid: list[tuple[_Request, dict[str, Any], int]] = []
            for request in pending:
                try:
                    feeds = model.feeds(request.inputs)
                    rows = model.spec.check(feeds)
                except ModelInputError as exc:
                    self._fail(request, exc)
                    continue
                valid.append((request, feeds, rows))
            if not valid:
                return
            size = max(wanted, 1) if self._dynamic else 1
            group, rest = valid[:size], valid[size:]
            pending = [request for request, _, _ in rest]
            self._run_group(model, group, wanted)

    def _run_group(
        self, model: OnnxModel, group: list[tuple[_Request, dict[str, Any], int]], wanted: int
    ) -> None:
        if len(group) == 1:
            feeds = group[0][1]
        else:
            feeds = {
                name: np.concatenate([f[name] for _, f, _ in group], axis=0)
                for name in model.spec.input_names
            }
        try:
            cpu0 = time.process_time()
            outputs, run_s = model.run_checked(feeds)
            cpu_s = time.process_time() - cpu0
            total_rows = sum(rows for _, _, rows in group)
            if len(group) > 1 and any(o.ndim == 0 or o.shape[0] != total_rows for o in outputs):
                raise InferenceError(
                    f"model {model.name}: outputs do not have the batch's {total_rows} rows"
                )
        except InferenceError as exc:
            for request, _, _ in group:
                self._fail(request, exc)
            if self.on_error is not None:
                self.on_error(exc)
            return
        if model.spec.dynamic_batch:
            self.policy.observe(len(group), run_s, wanted, cpu_s)
        record_success(model.name, run_s, {"model": model.name, "batch_size": len(group)})
        metrics.ONNX_BATCH_SIZE.labels(model.name).observe(len(group))
        if self.on_success is not None:
            self.on_success()
        now = time.perf_counter()
        offset = 0
        for request, _, rows in group:
            if len(group) == 1:
                parts: list[NDArray[Any]] = outputs
            else:
                parts = [o[offset : offset + rows].copy() for o in outputs]
            offset += rows
            result = model.make_result(
                parts,
                run_s=run_s,
                total_s=now - request.enqueued,
                batch_size=len(group),
                correlation_id=request.correlation_id,
            )
            _settle(request.future, result=result)
