"""The public surface is what ``thunderline.__all__`` says, and every name in it exists."""

from __future__ import annotations

import thunderline


def test_all_names_resolve() -> None:
    for name in thunderline.__all__:
        assert hasattr(thunderline, name), name


def test_no_private_or_module_leaks() -> None:
    assert all(not name.startswith("_") or name == "__version__" for name in thunderline.__all__)
    assert len(set(thunderline.__all__)) == len(thunderline.__all__)
