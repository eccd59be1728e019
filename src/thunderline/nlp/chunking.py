"""Long documents in chunks: split a text on natural boundaries, merge the chunk results.

A text longer than the chunk size is cut into pieces of at most ``size`` characters, each
ending where the text gives a natural break: after a blank line (paragraph) when there is
one in the second half of the window, else after a sentence end (``.``, ``!``, ``?``, ``…``
and closing quotes, then whitespace), else after a line break, else after any whitespace,
else at the window's end (a text without spaces). The pieces cover the text exactly, in order,
without overlap, so a chunk's offsets plus its start are offsets into the whole text.

:func:`merge_results` turns the per-chunk :class:`~thunderline.nlp.result.NlpResult` objects
back into one result for the whole text: entities, noun chunks and sentences shifted by their
chunk's start (``text[start:end]`` of the original is the span's text), the language that
covers most characters, character-weighted scores, summed durations.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

from thunderline.nlp.result import NlpResult, Span

#: A sentence end: terminal punctuation, optional closing quotes/brackets, then whitespace.
_SENTENCE_END: Final = re.compile(r"[.!?\u2026\u3002][\"'\u2019\u201d)\]]*\s+")
_WHITESPACE: Final = re.compile(r"\s+")


def _last_match_end(pattern: re.Pattern[str], text: str, lo: int, hi: int) -> int | None:
    last = None
    for match in pattern.finditer(text, lo, hi):
        last = match.end()
    return last


def _cut(text: str, start: int, size: int) -> int:
    """Where the chunk starting at ``start`` ends (exclusive), at most ``size`` characters on."""
    hi = start + size
    lo = start + size // 2
    para = text.rfind("\n\n", lo, hi)
    if para != -1:
        end = para + 2
        while end < hi and text[end] == "\n":
            end += 1
        return end
    found = _last_match_end(_SENTENCE_END, text, lo, hi)
    if found is not None and found > start:
        return found
    line = text.rfind("\n", lo, hi)
    if line != -1:
        return line + 1
    found = _last_match_end(_WHITESPACE, text, start + 1, hi)
    if found is not None and found > start:
        return found
    return hi


def split_text(text: str, size: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` character ranges of ``text``'s chunks (one range when it fits).

    Args:
        text: The whole text.
        size: Most characters in one chunk (at least 1).
    """
    size = max(size, 1)
    if len(text) <= size:
        return [(0, len(text))]
    ranges: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > size:
        end = _cut(text, start, size)
        ranges.append((start, end))
        start = end
    ranges.append((start, len(text)))
    return ranges


def _shift(spans: Sequence[Span], offset: int) -> list[dict[str, Any]]:
    """The spans moved by ``offset``, as field dicts (extras kept).

    The merged :class:`NlpResult` validates them once; copying each span model first cost
    twice as much.
    """
    return [
        dict(s.__dict__, **(s.__pydantic_extra__ or {}), start=s.start + offset, end=s.end + offset)
        for s in spans
    ]


def merge_results(
    doc_id: str, parts: Sequence[tuple[int, NlpResult]], *, truncated: bool = False
) -> NlpResult:
    """One result for a whole text from its chunks' results.

    Args:
        doc_id: The document's id (the chunks had their own).
        parts: ``(chunk start, chunk result)`` in text order.
        truncated: Whether the text was cut to the total limit before it was split.
    """
    if not parts:
        raise ValueError("merge_results needs at least one chunk result")
    by_lang: dict[str, int] = defaultdict(int)
    for _, part in parts:
        by_lang[part.lang] += part.chars
    lang = max(by_lang, key=lambda code: (by_lang[code], -_first_index(parts, code)))
    chars = sum(part.chars for _, part in parts)
    weight = max(chars, 1)
    lang_chars = max(by_lang[lang], 1)
    lang_score = sum(p.lang_score * p.chars for _, p in parts if p.lang == lang) / lang_chars
    conf = sum(p.confidence * p.chars for _, p in parts) / weight
    first = parts[0][1]
    return NlpResult(
        doc_id=doc_id,
        lang=lang,
        lang_score=round(min(max(lang_score, 0.0), 1.0), 4),
        pipeline=first.pipeline,
        pipeline_lang=first.pipeline_lang,
        entities=[e for start, p in parts for e in _shift(p.entities, start)],
        noun_chunks=[c for start, p in parts for c in _shift(p.noun_chunks, start)],
        sentences=[s for start, p in parts for s in _shift(p.sentences, start)],
        confidence=round(min(max(conf, 0.0), 1.0), 4),
        chars=chars,
        truncated=truncated or any(p.truncated for _, p in parts),
        duration_ms=round(sum(p.duration_ms for _, p in parts), 3),
        chunks=len(parts),
        batch_docs=max(p.batch_docs for _, p in parts),
    )


def _first_index(parts: Sequence[tuple[int, NlpResult]], lang: str) -> int:
    return next(i for i, (_, p) in enumerate(parts) if p.lang == lang)


__all__ = ["merge_results", "split_text"]
