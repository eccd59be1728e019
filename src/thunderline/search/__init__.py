"""Find anything: the full-text index, the query language, search, facets and export."""
