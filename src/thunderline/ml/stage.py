"""The infer stage: run the routed artifact through its ONNX model and publish the top labels.

Input: an event whose route starts with ``infer``: images (after classify) and text or code
(after the NLP stage for prose, so the text model's result sits beside spaCy's).
The payload is read from the object store (verified), preprocessed by content (images decoded
with Pillow and normalised to the model's input; text tokenised as the model declares) in a
worker thread, and run through the model's supervised worker and dynamic batcher (ONNX Runtime
releases the GIL, so the event loop keeps serving). Output: ``system.ml.inference.completed``
with ``{"inference": {"model", "version", "top_k": [{"label", "score"}], "inference_ms",
"batch_size"}}`` (correlation and causation ids on the envelope). Content no model applies to (an SVG for the raster image model, content with no listed model)
is passed on to the next stage with a note instead (``Stage.pass_on``). Failures are returned as
typed exceptions, so the engine dead-letters them as ``system.dlq.ml_inference_failed`` (or retries
the retryable ones), and are counted in ``thunderline_onnx_infer_errors_total``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from thunderline.config import Settings
from thunderline.errors import (
    ModelPinError,
    ThunderlineError,
    reason_of,
)
from thunderline.eventdata import (
    Classified,
    Inference,
    InferenceCompleted,
    LabelScore,
    Routed,
    data_of,
    extend,
)
from thunderline.events import INFERENCE_COMPLETED, CloudEvent
from thunderline.flow.stage import Outcome, StageOptions, StoreStage
from thunderline.ml.errors import (
    InferenceError,
    ModelLoadError,
    ModelNotFoundError,
    ModelUnavailableError,
    UnsupportedContentError,
)
from thunderline.ml.preprocess import payload_input
from thunderline.ml.registry import ModelEntry, ModelRegistry
from thunderline.ml.supervisor import ModelSupervisor
from thunderline.ml.tensors import ModelInput, top_k
from thunderline.objects.base import ObjectStore
from thunderline.obs import metrics

_log = logging.getLogger("thunderline.ml")
TOP_K = 5


def min_confidence(entry: ModelEntry) -> float | None:
    """The model's confidence threshold (registry ``min_confidence``).

    It was chosen on held-out data: a best score below it is reported as "no confident label".
    """
    value = entry.extra.get("min_confidence")
    if isinstance(value, int | float) and 0.0 <= float(value) <= 1.0:
        return float(value)
    return None


#: Language-detector score from which a text counts as written in its detected language (the
#: NLP stage's own threshold for "confidently in another language").
LANGUAGE_MIN_SCORE = 0.5


def text_kind(data: Classified) -> str:
    """What the artifact's text is: ``prose``, ``code``, ``config``, ``data`` or ``none``.

    The extract stage's answer when it ran (``extract.content``), else the content kind of the
    extractor registered for the Magika label (CSV and TSV: data; JSON, YAML, XML: config).
    """
    from thunderline.extract.registry import extractor_for

    if data.extract is not None and data.extract.content != "none":
        return data.extract.content
    c = data.classification
    return extractor_for(c.label, c.group, c.is_text).content


def not_applicable(
    entry: ModelEntry, data: bytes, *, language: str | None = None, language_score: float = 0.0
) -> str | None:
    """Why ``entry`` does not apply to this payload (None: it does).

    From what the entry declares: an image under ``min_width`` x ``min_height``, a text under
    ``min_bytes`` or confidently in a language not in ``languages``.

    Args:
        entry: The registry entry chosen for the artifact.
        data: The payload bytes.
        language: The text's detected ISO 639-1 language (the NLP stage's), if known.
        language_score: The detector's probability for ``language``.

    Returns:
        A sentence stating the reason, or None.
    """
    if entry.kind == "image" and (entry.min_width or entry.min_height):
        size = _image_size(data)
        if size is not None:
            width, height = size
            if width < entry.min_width or height < entry.min_height:
                return (
                    f"image of {width}x{height} pixels is under the {entry.min_width}x"
                    f"{entry.min_height} minimum of model {entry.name}"
                )
    if entry.kind == "text":
        length = len(data.strip())
        if length < entry.min_bytes:
            return f"text of {length} bytes is under the {entry.min_bytes}-byte minimum of model {entry.name}"
        if (
            entry.languages
            and language
            and language not in ("und", *entry.languages)
            and language_score >= LANGUAGE_MIN_SCORE
        ):
            return (
                f"text in {language!r} (score {language_score:.2f}); model {entry.name} reads "
                f"{', '.join(entry.languages)}"
            )
    return None


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header, None when Pillow cannot read it."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.width), int(image.height)
    except Exception:  # undecodable: preprocessing reports it
        return None


class InferStage(StoreStage):
    """ONNX inference on images (and text routed here), via supervised, batched sessions."""

    name = "infer"

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        options: StageOptions | None = None,
        *,
        supervisor: ModelSupervisor | None = None,
    ) -> None:
        super().__init__(settings, store, options)
        self.supervisor = supervisor
        self._owns_supervisor = supervisor is None

    @property
    def registry(self) -> ModelRegistry:
        """The model registry of the supervisor (after :meth:`setup`)."""
        if self.supervisor is None:
            raise RuntimeError("InferStage.setup() has not run")
        return self.supervisor.registry

    async def setup(self) -> None:
        """Open the registry, start the supervisor and preload the models marked ``preload``."""
        if self.supervisor is None:
            self.supervisor = ModelSupervisor.from_settings(self.settings)
        supervisor = self.supervisor
        await asyncio.to_thread(supervisor.start)

    async def close(self) -> None:
        """Close the supervisor when this stage made it."""
        if self.supervisor is not None and self._owns_supervisor:
            await asyncio.to_thread(self.supervisor.close)

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        """Run every event's model at once, so the batcher can batch them."""
        # every event is submitted at once, so the batcher can run them as one batch
        return list(await asyncio.gather(*(self._one(event) for event in events)))

    # ---- one event ----------------------------------------------------------------------
    def model_for(self, event: CloudEvent) -> ModelEntry:
        """The registry entry for the event's content.

        A model whose ``applies_to`` names the Magika label (then the group); else images ->
        ``TL_ONNX_IMAGE_MODEL``, prose and code -> ``TL_ONNX_TEXT_MODEL``; data (CSV, TSV) and
        configuration (JSON, YAML, XML...) and anything else are unsupported (passed on with
        the reason). The registry is re-read first when its file changed (``models add`` while
        the service runs).
        """
        data = data_of(event, Classified)
        classification = data.classification
        group, mime = classification.group, classification.mime
        self.registry.refresh()
        if data.reprocess is not None and data.reprocess.model:
            return self._pinned(data.reprocess.model)
        chosen = self.registry.applying_to(classification.label, group)
        if chosen is not None:
            return chosen
        if classification.label == "svg" or mime == "image/svg+xml":
            raise UnsupportedContentError(
                "a vector image (SVG): the raster image model does not apply",
                details={"label": classification.label, "group": group},
            )
        if group == "image" or mime.startswith("image/"):
            return self.registry.entry(self.settings.onnx.image_model)
        if group in ("text", "code") or classification.is_text:
            kind = text_kind(data_of(event, Classified))
            if kind in ("data", "config"):  # the text model reads prose and source code
                raise UnsupportedContentError(
                    f"{'tabular data' if kind == 'data' else 'configuration'} "
                    f"({classification.label}): the text model applies to prose and source "
                    "code; a registry model whose applies_to names the label would be used",
                    details={"label": classification.label, "content": kind},
                )
            return self.registry.entry(self.settings.onnx.text_model)
        raise UnsupportedContentError(
            f"no model for content {classification.label!r} (group {group!r})",
            details={"label": classification.label, "group": group},
        )

    def _pinned(self, pin: str) -> ModelEntry:
        """The entry a reprocess run pins (``NAME@VERSION``), whatever the content.

        Raises:
            ModelPinError: the registry does not hold that model at that version.
        """
        name, _, version = pin.partition("@")
        try:
            entry = self.registry.entry(name)
        except ThunderlineError as exc:
            raise ModelPinError(f"the run pins {pin}: {exc}", details={"model": pin}) from exc
        if entry.version != version:
            raise ModelPinError(
                f"the run pins {pin}; this registry has {name} at version {entry.version}",
                details={"model": pin, "version": entry.version},
            )
        return entry

    def _prepare(self, event: CloudEvent) -> tuple[ModelEntry, ModelInput]:
        entry = self.model_for(event)
        classified = data_of(event, Classified)
        data = self.store.get_bytes(classified.artifact.sha256)
        nlp = getattr(classified, "nlp", None)
        reason = not_applicable(
            entry,
            data,
            language=getattr(nlp, "lang", None),
            language_score=float(getattr(nlp, "lang_score", 0.0) or 0.0),
        )
        if reason is not None:  # the model does not apply: passed on with the reason
            raise UnsupportedContentError(reason, details={"model": entry.name})
        return entry, payload_input(data, entry)

    async def _one(self, event: CloudEvent) -> Outcome:
        try:
            entry, model_input = await asyncio.to_thread(self._prepare, event)
        except UnsupportedContentError as exc:  # no model applies: not a failure of the artifact
            return [self.pass_on(event, data_of(event, Routed), str(exc))]
        except ModelNotFoundError as exc:  # a route names a model that is not there
            return [self._skip_model(event, exc, count=True)]
        except Exception as exc:
            err = exc if isinstance(exc, ThunderlineError) else InferenceError(str(exc))
            metrics.ONNX_INFER_ERRORS.labels(self._model_label(event), reason_of(err)).inc()
            return err
        assert self.supervisor is not None
        try:
            result = await self.supervisor.infer_async(
                entry.name, [model_input], correlation_id=event.correlationid
            )
        except (ModelUnavailableError, ModelLoadError) as exc:  # absent, refused or unhealthy:
            return [self._skip_model(event, exc, count=False)]  # counted by the batcher
        except ThunderlineError as exc:  # counted by the batcher
            return exc
        except Exception as exc:
            metrics.ONNX_INFER_ERRORS.labels(entry.name, "internal").inc()
            return InferenceError(f"inference failed: {type(exc).__name__}: {exc}")
        scores = result.first.tensor[0] if result.first.tensor.ndim > 1 else result.first.tensor
        labels = list(entry.labels)  # unnamed classes are reported as class_<i>
        best = top_k(scores, labels, min(TOP_K, max(1, scores.size)))
        threshold = min_confidence(entry)
        inference = Inference(
            model=result.model,
            version=result.version,
            top_k=[LabelScore(label=str(t["label"]), score=float(t["score"])) for t in best],
            inference_ms=result.inference_ms,
            batch_size=result.batch_size,
            confident=threshold is None or (bool(best) and float(best[0]["score"]) >= threshold),
            threshold=threshold,
        )
        data = extend(data_of(event, Classified), InferenceCompleted, inference=inference)
        return [self.advance(event, INFERENCE_COMPLETED, data)]

    def _skip_model(self, event: CloudEvent, exc: ThunderlineError, *, count: bool) -> CloudEvent:
        """The artifact on to the next stage with a note: the model, not the artifact, is at fault.

        Dead-lettering would send every artifact of its route there for nothing (issue 24).
        The problem is visible in ``thunderline_onnx_model_healthy``, ``models verify``,
        ``/readyz`` and the log; replaying is not needed once the model is fixed.
        """
        model = str(exc.details.get("model") or self._model_label(event))
        if count:
            metrics.ONNX_INFER_ERRORS.labels(model, exc.reason).inc()
        _log.warning("infer skipped for %s: %s: %s", event.correlationid, exc.reason, exc)
        note = f"skipped: model {model} {exc.reason.replace('_', ' ')}: {exc}"
        return self.pass_on(event, data_of(event, Routed), note[:500])

    def _model_label(self, event: CloudEvent) -> str:
        """A bounded metric label for a failure before the model was known."""
        try:
            return self.model_for(event).name
        except Exception:
            return "none"
