"""Splitting long texts on natural boundaries and merging the chunk results."""

from __future__ import annotations

import itertools

import pytest

from thunderline.nlp.chunking import merge_results, split_text
from thunderline.nlp.result import Entity, NlpResult, Span


def _covers(text: str, ranges: list[tuple[int, int]], size: int) -> None:
    assert ranges[0][0] == 0 and ranges[-1][1] == len(text)
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end == start  # contiguous, no overlap, nothing lost
    assert all(0 < b - a <= size for a, b in ranges)


def test_short_text_is_one_chunk() -> None:
    assert split_text("Hello Oslo.", 100) == [(0, 11)]
    assert split_text("", 100) == [(0, 0)]


def test_cuts_after_a_paragraph_when_there_is_one() -> None:
    para = "Alpha beta gamma. Delta epsilon.\n\n"
    text = para * 10
    ranges = split_text(text, 100)
    _covers(text, ranges, 100)
    assert all(text[a:b].endswith("\n\n") for a, b in ranges[:-1])


def test_cuts_after_a_sentence_without_paragraphs() -> None:
    text = "Ships sail from Rotterdam to Singapore. " * 20
    ranges = split_text(text, 150)
    _covers(text, ranges, 150)
    assert all(text[a:b].endswith(". ") for a, b in ranges[:-1])


def test_sentence_end_with_closing_quote_and_other_marks() -> None:
    text = 'He said "stop!" Then left? ' * 30
    ranges = split_text(text, 64)
    _covers(text, ranges, 64)
    for a, b in ranges[:-1]:
        assert text[a:b].rstrip()[-1] in '!?"'


def test_falls_back_to_whitespace_then_a_hard_cut() -> None:
    words = "word " * 100
    ranges = split_text(words, 42)
    _covers(words, ranges, 42)
    assert all(words[a:b].endswith(" ") for a, b in ranges[:-1])
    solid = "y" * 1000
    ranges = split_text(solid, 300)
    _covers(solid, ranges, 300)
    assert [b - a for a, b in ranges] == [300, 300, 300, 100]


@pytest.mark.parametrize("size", [1, 7, 50, 333])
def test_any_text_is_covered_exactly(size: int) -> None:
    text = "Çà et là.\n\nUnicode ✓ text — with emoji 😀! And tabs\tand\nlines. " * 13
    ranges = split_text(text, size)
    _covers(text, ranges, size)
    assert "".join(text[a:b] for a, b in ranges) == text


def _part(doc_id: str, text: str, lang: str = "en", score: float = 0.9) -> NlpResult:
    word = text.split()[0]
    return NlpResult(
        doc_id=doc_id,
        lang=lang,
        lang_score=score,
        pipeline="p 1",
        entities=[Entity(text=word, label="GPE", start=0, end=len(word))],
        noun_chunks=[Span(text=word, start=0, end=len(word))],
        sentences=[Span(text=text.strip(), start=0, end=len(text.strip()))],
        confidence=score,
        chars=len(text),
        duration_ms=2.0,
        batch_docs=1,
    )


def test_merge_shifts_offsets_into_the_whole_text() -> None:
    text = "Paris is big. Lyon is small. Nice is sunny. "
    ranges = split_text(text, 15)
    parts = [(a, _part(f"d#{i}", text[a:b])) for i, (a, b) in enumerate(ranges)]
    merged = merge_results("d", parts)
    assert merged.doc_id == "d" and merged.chunks == len(ranges) == 3
    assert [e.text for e in merged.entities] == ["Paris", "Lyon", "Nice"]
    for span in [*merged.entities, *merged.noun_chunks, *merged.sentences]:
        assert text[span.start : span.end] == span.text
    assert merged.chars == len(text) and merged.duration_ms == 6.0
    assert merged.truncated is False and merge_results("d", parts, truncated=True).truncated


def test_merge_language_is_the_one_covering_most_characters() -> None:
    parts = [
        (0, _part("a", "Berlin " * 3, "de", 0.5)),
        (21, _part("b", "London " * 10, "en", 0.8)),
        (91, _part("c", "Paris " * 2, "fr", 1.0)),
    ]
    merged = merge_results("d", parts)
    assert merged.lang == "en" and merged.lang_score == 0.8
    assert 0.5 < merged.confidence < 1.0


def test_merge_needs_a_part() -> None:
    with pytest.raises(ValueError, match="at least one"):
        merge_results("d", [])
