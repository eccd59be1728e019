"""Content from every file: one typed extraction result per artifact (issue 18).

- :mod:`.result` -- :class:`ExtractResult` (text with page/slide/sheet boundaries, headings,
  typed metadata core + raw key/values, embedded parts, method, library version, warnings)
  and :class:`ExtractSummary` (what events and voxels carry; the text is stored once);
- :mod:`.registry` -- the extractors by Magika label; :mod:`.formats` -- the extractors;
- :mod:`.worker` / :mod:`.pool` -- supervised worker processes (progress and per-kind total
  timeouts, a memory cap, a restart after N files);
- :mod:`.stage` -- the ``extract`` pipeline stage (``system.extract.completed``).

Importing this package imports no parser: the worker imports each one at first use.
"""

from thunderline.extract.result import (
    DocMetadata,
    EmbeddedPart,
    ExtractResult,
    ExtractSummary,
    Heading,
    Segment,
)

__all__ = [
    "DocMetadata",
    "EmbeddedPart",
    "ExtractResult",
    "ExtractSummary",
    "Heading",
    "Segment",
]
