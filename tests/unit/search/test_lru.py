"""The search caches' bounded map: least recently used out first, reads count as use."""

from __future__ import annotations

from thunderline.search.lru import Lru


def test_the_least_recently_used_entry_leaves_first() -> None:
    cache: Lru[str, int] = Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a read makes "a" the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and len(cache) == 2
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "c": 3}
    cache.put_many([("d", 4), ("a", 5)])  # "c" was the least recent
    assert cache.get_many(["a", "c", "d"]) == {"a": 5, "d": 4}
    cache.clear()
    assert len(cache) == 0 and cache.get("a") is None
