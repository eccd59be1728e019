"""What the search index holds for one voxel, derived from its sealed document and its text.

:func:`index_doc` is the one place that reads a voxel's traits for search: the file name
(``artifact.name``), Magika's label and group, spaCy's language and entities (text and type),
the top label of every ONNX model (``inference``) and the document kind (the top label of the
``text_classifier``). ``content_sha256`` hashes all of that plus the indexed text, so
``voxels verify`` can tell an index row that no longer says what the voxel says.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from thunderline import names
from thunderline.search.stem import algorithm

try:  # the C quoting json.dumps(ensure_ascii=True) itself uses
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - CPython always has _json
    from json.encoder import py_encode_basestring_ascii as _quote

if TYPE_CHECKING:
    from thunderline.voxel.schema import Voxel


#: The ONNX model whose top label is the document kind (licence, changelog, readme ...).
KIND_MODEL = "text_classifier"
#: At most this many distinct entities of one voxel are indexed as terms (facets, filters).
MAX_ENTITIES = 200
#: spaCy entity types that are numbers, dates or amounts: indexed as ``entnum`` terms, left
#: out of the top-entities facet (they dominated it: years, counts, prices).
NUMERIC_ENTITY_TYPES: Final = frozenset(
    {"CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "DATE", "TIME"}
)
#: 2: numeric entities under ``entnum`` (1: every entity under ``entity``).
TERMS_LAYOUT: Final = 2
_TERM_MAX = 500
#: SHA-256 of the empty body (a voxel without text: images, archives, binaries)
_EMPTY_SHA: Final = hashlib.sha256(b"").hexdigest()


def norm(value: str) -> str:
    """The form terms are stored and compared in: NFKC, case-folded, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())[:_TERM_MAX]


@dataclass(frozen=True)
class IndexDoc:
    """One voxel as the index stores it."""

    voxel_id: str
    ts_unix: float
    label: str | None
    group: str | None
    lang: str | None
    kind: str | None
    size: int
    name: str
    body: str
    entities: tuple[tuple[str, str], ...] = ()  # (text, type)
    models: tuple[tuple[str, str], ...] = ()  # (model, top label)
    content_sha256: str = field(default="")

    def terms(self) -> list[tuple[str, str, str]]:
        """Multi-valued fields as (field, normalised value, shown value) rows, unique."""
        rows: dict[tuple[str, str], str] = {}
        for text, kind in self.entities:
            # numbers, dates and amounts are kept apart so they never crowd the top-entities
            # facet (``entity:`` filters read both fields)
            field_ = "entnum" if kind.upper() in NUMERIC_ENTITY_TYPES else "entity"
            rows.setdefault((field_, norm(text)), text[:_TERM_MAX])
            rows.setdefault(("etype", norm(kind)), kind[:_TERM_MAX])
        for model, label in self.models:
            rows.setdefault(("model", norm(f"{model}={label}")), f"{model}={label}"[:_TERM_MAX])
        return [(f, v, shown) for (f, v), shown in rows.items() if v]

    def entity_text(self) -> str:
        """The entities as searchable text: one ``TEXT TYPE`` line per entity."""
        return "\n".join(f"{text} {kind}" for text, kind in self.entities)

    def meta_text(self) -> str:
        """Labels, language and models as words, so a plain word query finds them too."""
        words = [self.label, self.group, self.lang, self.kind]
        words += [f"{model} {label}" for model, label in self.models]
        return " ".join(w for w in words if w)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any, limit: int = 128) -> str | None:
    return str(value)[:limit] if isinstance(value, str) and value else None


def index_doc(voxel: Voxel, text: str | None, *, max_chars: int) -> IndexDoc:
    """The index row of ``voxel`` with ``text`` (its extracted text, or None)."""
    traits = voxel.traits
    artifact = _dict(traits.get("artifact"))
    classification = _dict(traits.get("classification"))
    nlp = _dict(traits.get("nlp"))
    inference = _dict(traits.get("inference"))
    name = names.wire_text(str(artifact.get("name") or voxel.source.rsplit("/", 1)[-1]))
    entities: dict[tuple[str, str], None] = {}
    for entity in nlp.get("entities") or ():
        entity = _dict(entity)
        text_, kind = _str(entity.get("text"), _TERM_MAX), _str(entity.get("label"), 64)
        if text_ and kind and text_.strip():
            entities.setdefault((" ".join(text_.split()), kind), None)
        if len(entities) >= MAX_ENTITIES:
            break
    models: list[tuple[str, str]] = []
    kind_label: str | None = None
    model = _str(inference.get("model"))
    top = _dict(next(iter(inference.get("top_k") or ()), None))  # only the top one is indexed
    if model and _str(top.get("label")):
        label = str(top["label"])[:128]
        models.append((model, label))
        if model == KIND_MODEL:
            kind_label = label
    body = text[:max_chars] if text and max_chars > 0 else ""
    if body:
        body = names.wire_text(body).replace("\x00", " ")  # PostgreSQL text holds no NUL
    name = name.replace("\x00", " ")
    label_ = classification.get("label")  # what ``voxel.label`` reads, without a 2nd look-up
    label_, group, lang = (
        None if label_ is None else str(label_),
        _str(classification.get("group"), 64),
        _str(nlp.get("lang"), 16),
    )
    size, ents, mods = voxel.payload_size, tuple(entities), tuple(models)
    return IndexDoc(
        voxel_id=voxel.id,
        ts_unix=voxel.ts.timestamp(),
        label=label_,
        group=group,
        lang=lang,
        kind=kind_label,
        size=size,
        name=name,
        body=body,
        entities=ents,
        models=mods,
        content_sha256=_hash(label_, group, lang, kind_label, size, name, body, ents, mods),
    )


def _q(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def _pairs(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return "[]"
    return "[" + ", ".join(f"[{_quote(a)}, {_quote(b)}]" for a, b in pairs) + "]"


def _hash(
    label: str | None,
    group: str | None,
    lang: str | None,
    kind: str | None,
    size: int,
    name: str,
    body: str,
    entities: tuple[tuple[str, str], ...],
    models: tuple[tuple[str, str], ...],
) -> str:
    """:func:`content_hash` of these fields, its JSON written directly (the same bytes).

    ``json.dumps(parts, sort_keys=True, ensure_ascii=True)`` with the default separators,
    written with the encoder's own string quoting (one JSON pass cost a fifth of the row).
    Anything but the expected types takes the ``json.dumps`` path itself.
    """
    body_sha = (
        hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest() if body else _EMPTY_SHA
    )
    stemmer = algorithm(lang)
    try:
        if type(size) is not int:  # a bool or float: json.dumps writes it its own way
            raise TypeError(size)
        text = (
            f'{{"body": "{body_sha}", "entities": {_pairs(entities)}, "group": {_q(group)}, '
            f'"kind": {_q(kind)}, "label": {_q(label)}, "lang": {_q(lang)}, '
            f'"layout": {TERMS_LAYOUT}, "models": {_pairs(models)}, "name": {_quote(name)}, '
            f'"size": {int.__repr__(size)}'
        )
    except (TypeError, ValueError):  # pragma: no cover - index_doc always gives these types
        parts: dict[str, Any] = {
            "layout": TERMS_LAYOUT,
            "label": label,
            "group": group,
            "lang": lang,
            "kind": kind,
            "size": size,
            "name": name,
            "body": body_sha,
            "entities": [list(e) for e in entities],
            "models": [list(m) for m in models],
        }
        if stemmer is not None:
            parts["stemmer"] = f"snowball-{stemmer}"
        encoded = json.dumps(parts, sort_keys=True, ensure_ascii=True).encode("ascii")
        return hashlib.sha256(encoded).hexdigest()
    if stemmer is not None:
        text += f', "stemmer": {_quote(f"snowball-{stemmer}")}'
    return hashlib.sha256((text + "}").encode("ascii")).hexdigest()


def content_hash(doc: IndexDoc) -> str:
    """SHA-256 of everything the index says about the voxel (staleness check).

    ``layout`` names the way rows are written: a change of it makes every older row stale,
    so ``voxels verify --all`` reports them and ``index rebuild`` rewrites them. ``stemmer``
    (only for a language with a Snowball stemmer other than English, so an English row's hash
    is what it was) makes rows written before stemming per language stale the same way.
    """
    return _hash(
        doc.label,
        doc.group,
        doc.lang,
        doc.kind,
        doc.size,
        doc.name,
        doc.body,
        doc.entities,
        doc.models,
    )
