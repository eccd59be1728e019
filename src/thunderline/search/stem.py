"""Stemming per language for the SQLite index (FTS5 ships only Porter, i.e. English).

A document whose language (spaCy/langdetect's ``nlp.lang``) has a Snowball stemmer other
than English gets its body's words stemmed in that language (the ``snowballstemmer``
package: the Snowball project's algorithms in pure Python) and written, in order, into the
``stems`` column of ``search_fts``; the original text stays in ``body`` for snippets. A query
word is stemmed with the stemmer of every language present in the index (and of a ``lang:``
filter) and looked up in ``stems`` beside the plain word, so ``Verträge`` finds a German
document that says ``Vertrag``. English keeps FTS5's Porter tokenizer, unchanged.

PostgreSQL needs none of this: its ``tsvector`` is built with the language's text search
configuration (:data:`thunderline.search.index.PG_CONFIGS`).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from typing import Any, Final

#: spaCy/langdetect language codes -> Snowball algorithms (English: FTS5's Porter instead).
SNOWBALL: Final[dict[str, str]] = {
    "ar": "arabic",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "es": "spanish",
    "eu": "basque",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hi": "hindi",
    "hu": "hungarian",
    "hy": "armenian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "nb": "norwegian",
    "ne": "nepali",
    "nl": "dutch",
    "no": "norwegian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
}
#: Words FTS5's ``unicode61`` tokenizer would make of a text: runs of letters and digits.
_TOKEN = re.compile(r"[^\W_]+")
_CACHE_MAX = 50_000
_lock = threading.Lock()
_stemmers: dict[str, tuple[Any, dict[str, str]]] = {}


def algorithm(lang: str | None) -> str | None:
    """The Snowball algorithm of a language code (``de``, ``fr-CA`` ...); None: no stemming."""
    return SNOWBALL.get((lang or "").split("-")[0].lower())


def _stemmer(name: str) -> tuple[Any, dict[str, str]]:
    with _lock:
        found = _stemmers.get(name)
        if found is None:
            import snowballstemmer

            found = (snowballstemmer.stemmer(name), {})
            _stemmers[name] = found
        return found


def _stem_all(lowered: list[str], name: str) -> list[str]:
    stemmer, cache = _stemmer(name)
    get = cache.get
    out = [get(word) for word in lowered]
    missing = [word for word, stem in zip(lowered, out, strict=True) if stem is None]
    if missing:
        unique = list(dict.fromkeys(missing))
        with _lock:  # a Snowball stemmer object keeps state while it works
            stems = [str(s) for s in stemmer.stemWords(unique)]
        if len(cache) + len(unique) > _CACHE_MAX:
            cache.clear()
        cache.update(zip(unique, stems, strict=True))
        out = [get(word) or word for word in lowered]
    return out  # type: ignore[return-value]


def stem_words(words: Iterable[str], lang: str | None) -> list[str]:
    """Each word (lower-cased) stemmed in the language; unchanged when it has no stemmer."""
    lowered = [unicodedata.normalize("NFC", w).lower() for w in words]
    name = algorithm(lang)
    return lowered if name is None else _stem_all(lowered, name)


def stems_of(text: str, lang: str | None) -> str:
    """The ``stems`` column of a document: its words stemmed, in order ('' without a stemmer)."""
    name = algorithm(lang)
    if name is None or not text:
        return ""
    return " ".join(_stem_all(_TOKEN.findall(unicodedata.normalize("NFC", text).lower()), name))


def tokens(text: str) -> list[str]:
    """The words of ``text`` as the index splits them."""
    return _TOKEN.findall(text)


_MARKED = re.compile(r"\x02|\x03|[^\s\x02\x03]+")


def body_snippet(body: str, stems_marked: str, words: int = 24) -> str | None:
    """A snippet of the original ``body`` with the words highlighted whose stems matched.

    ``stems_marked`` is FTS5's ``highlight()`` of the ``stems`` column (matches between
    the sentinels STX and ETX); its words are the body's words in order, so the n-th stem is the
    n-th word of the body. None when there is no match or the two do not line up.
    """
    flags: list[bool] = []
    on = False
    for token in _MARKED.findall(stems_marked):
        if token == "\x02":
            on = True
        elif token == "\x03":
            on = False
        else:
            flags.append(on)
    spans = list(_TOKEN.finditer(unicodedata.normalize("NFC", body)))
    if len(spans) != len(flags) or not any(flags):
        return None
    text = unicodedata.normalize("NFC", body)
    first = flags.index(True)
    start = max(0, first - 4)
    end = min(len(spans), start + words)
    out = ["… " if start else ""]
    cursor = spans[start].start()
    for i in range(start, end):
        span = spans[i]
        out.append(text[cursor : span.start()])
        word = text[span.start() : span.end()]
        out.append(f"\x02{word}\x03" if flags[i] else word)
        cursor = span.end()
    out.append(" …" if end < len(spans) else text[cursor:])
    return "".join(out)
