"""content_hash writes its JSON directly: the same value json.dumps gave (rows stay current)."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import pytest

from thunderline.search.document import IndexDoc, content_hash
from thunderline.search.stem import algorithm


def reference(doc: IndexDoc) -> str:
    """The hash as it was written before (``json.dumps`` of the parts): stored rows hold it."""
    parts: dict[str, Any] = {
        "layout": 2,
        "label": doc.label,
        "group": doc.group,
        "lang": doc.lang,
        "kind": doc.kind,
        "size": doc.size,
        "name": doc.name,
        "body": hashlib.sha256(doc.body.encode("utf-8", "surrogatepass")).hexdigest(),
        "entities": [list(e) for e in doc.entities],
        "models": [list(m) for m in doc.models],
    }
    stemmer = algorithm(doc.lang)
    if stemmer is not None:
        parts["stemmer"] = f"snowball-{stemmer}"
    encoded = json.dumps(parts, sort_keys=True, ensure_ascii=True).encode("ascii")
    return hashlib.sha256(encoded).hexdigest()


_ALPHABET = 'aZ09 "\\/\n\t\x00\x1f\x7fé€中\U0001f600\udc80\ud800'


def _text(rng: random.Random, empty: bool = True) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0 if empty else 1, 12)))


def _doc(rng: random.Random) -> IndexDoc:
    def maybe() -> str | None:
        return None if rng.random() < 0.3 else _text(rng)

    return IndexDoc(
        voxel_id="v",
        ts_unix=1.5,
        label=maybe(),
        group=maybe(),
        lang=rng.choice([None, "en", "de", "fr", "xx", "ru", "pt-BR"]),
        kind=maybe(),
        size=rng.choice([0, 1, 10**12, 1024]),
        name=_text(rng),
        body=_text(rng),
        entities=tuple((_text(rng), _text(rng)) for _ in range(rng.randint(0, 3))),
        models=tuple((_text(rng), _text(rng)) for _ in range(rng.randint(0, 2))),
    )


@pytest.mark.parametrize("seed", range(20))
def test_same_hash_as_json_dumps(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        doc = _doc(rng)
        assert content_hash(doc) == reference(doc)


def test_a_changed_field_changes_the_hash() -> None:
    doc = _doc(random.Random(1))
    other = IndexDoc(**{**doc.__dict__, "size": doc.size + 1})
    assert content_hash(other) != content_hash(doc)
