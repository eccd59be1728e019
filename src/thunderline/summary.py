"""Summary representations: what lists, ``--json`` lines and live events carry by default.

An NLP result holds every sentence's text and every entity (over 200 KB for a 100 KB text);
a list of them is megabytes. The summary keeps what a list or a log line needs -- counts, the
most frequent entities and entity labels, sizes, ids -- and the full result stays one request
away: the voxel's detail route (``GET /v1/voxels/{id}``), ``voxels show``, or ``--full``.

Bounds: at most :data:`TOP_ENTITIES` entities (text cut to :data:`ENTITY_TEXT_MAX`
characters), :data:`TOP_ENTITY_LABELS` entity labels and :data:`TOP_K` inference labels, so a
summary has a fixed upper size whatever the document.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from thunderline import ids
from thunderline.eventdata import Inference
from thunderline.voxel.schema import Voxel

TOP_ENTITIES: Final = 5
TOP_ENTITY_LABELS: Final = 6
TOP_K: Final = 3
ENTITY_TEXT_MAX: Final = 48


class EntityCount(BaseModel):
    """One entity text and label with how often it occurs in the document."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field(description=f"The entity's text (cut to {ENTITY_TEXT_MAX} characters).")
    label: str
    count: int = Field(ge=1)


class NlpSummary(BaseModel):
    """Counts and the most frequent entities of an NLP result (full result: detail route)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lang: str
    confidence: float | None = None
    chars: int = Field(0, description="Characters analysed.")
    truncated: bool = False
    chunks: int = Field(1, description="Pieces the text was processed in.")
    sentences: int = Field(0, description="Number of sentences.")
    entities: int = Field(0, description="Number of entities.")
    noun_chunks: int = Field(0, description="Number of noun chunks.")
    entity_labels: dict[str, int] = Field(
        default_factory=dict, description=f"The {TOP_ENTITY_LABELS} most frequent entity labels."
    )
    top_entities: list[EntityCount] = Field(
        default_factory=list, description=f"The {TOP_ENTITIES} most frequent entities."
    )
    extraction: str | None = Field(None, description="How the text was extracted (method).")


class VoxelBrief(BaseModel):
    """One voxel in a list: ids, sizes, labels and result summaries (full: the detail route)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    short_id: str = Field(description="The id's random tail: typeable, accepted everywhere.")
    ts: str
    name: str | None = None
    label: str | None = None
    group: str | None = None
    mime: str | None = None
    score: float | None = None
    payload_size: int
    payload_sha256: str
    correlation_id: str
    parents: int = Field(0, description="Number of parent voxels (archive members have 1).")
    nlp: NlpSummary | None = None
    inference: Inference | None = Field(None, description=f"Model, version, top {TOP_K} labels.")


def _cut(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= ENTITY_TEXT_MAX else flat[: ENTITY_TEXT_MAX - 1] + "…"


def nlp_summary(nlp: Mapping[str, Any]) -> NlpSummary:
    """The summary of an NLP result given as its JSON dict (trait, event data or model dump)."""
    entities = [e for e in nlp.get("entities") or [] if isinstance(e, Mapping)]
    by_entity = Counter((_cut(str(e.get("text", ""))), str(e.get("label", ""))) for e in entities)
    labels = Counter(str(e.get("label", "")) for e in entities)
    extraction = nlp.get("extraction")
    confidence = nlp.get("confidence")
    return NlpSummary(
        lang=str(nlp.get("lang") or "und"),
        confidence=float(confidence) if isinstance(confidence, int | float) else None,
        chars=int(nlp.get("chars") or 0),
        truncated=bool(nlp.get("truncated")),
        chunks=int(nlp.get("chunks") or 1),
        sentences=len(nlp.get("sentences") or []),
        entities=len(entities),
        noun_chunks=len(nlp.get("noun_chunks") or []),
        entity_labels=dict(labels.most_common(TOP_ENTITY_LABELS)),
        top_entities=[
            EntityCount(text=text, label=label, count=n)
            for (text, label), n in by_entity.most_common(TOP_ENTITIES)
        ],
        extraction=str(extraction.get("method")) if isinstance(extraction, Mapping) else None,
    )


def inference_summary(inference: Mapping[str, Any]) -> Inference | None:
    """The inference result with its top :data:`TOP_K` labels (None if it does not parse)."""
    try:
        full = Inference.model_validate(inference)
    except ValueError:
        return None
    return full.model_copy(update={"top_k": full.top_k[:TOP_K]})


def voxel_brief(voxel: Voxel) -> VoxelBrief:
    """A voxel as a list item (bounded size, see the module doc)."""
    traits = voxel.traits
    artifact = traits.get("artifact")
    classification = traits.get("classification")
    cls = classification if isinstance(classification, Mapping) else {}
    nlp = traits.get("nlp")
    inference = traits.get("inference")
    score = cls.get("score")
    return VoxelBrief(
        id=voxel.id,
        short_id=ids.short(voxel.id),
        ts=voxel.model_dump(mode="json", include={"ts"})["ts"],
        name=str(artifact["name"])
        if isinstance(artifact, Mapping) and artifact.get("name") is not None
        else None,
        label=voxel.label,
        group=str(cls["group"]) if cls.get("group") is not None else None,
        mime=str(cls["mime"]) if cls.get("mime") is not None else None,
        score=float(score) if isinstance(score, int | float) else None,
        payload_size=voxel.payload_size,
        payload_sha256=voxel.payload_sha256,
        correlation_id=voxel.correlation_id,
        parents=len(voxel.lineage.parent_voxel_ids),
        nlp=nlp_summary(nlp) if isinstance(nlp, Mapping) else None,
        inference=inference_summary(inference) if isinstance(inference, Mapping) else None,
    )


def summarize_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Event data (wire JSON) with ``nlp`` results summarised and ``inference`` cut to top labels.

    A DLQ record's ``original`` event data is summarised likewise. Everything else is unchanged.
    """
    out = dict(data)
    nlp = out.get("nlp")
    if isinstance(nlp, Mapping) and "sentences" in nlp:
        out["nlp"] = nlp_summary(nlp).model_dump(mode="json", exclude_none=True)
    inference = out.get("inference")
    if isinstance(inference, Mapping):
        brief = inference_summary(inference)
        if brief is not None:
            out["inference"] = brief.model_dump(mode="json")
    original = out.get("original")
    if isinstance(original, Mapping) and isinstance(original.get("data"), Mapping):
        out["original"] = {**original, "data": summarize_data(original["data"])}
    return out


__all__ = [
    "EntityCount",
    "NlpSummary",
    "VoxelBrief",
    "inference_summary",
    "nlp_summary",
    "summarize_data",
    "voxel_brief",
]
