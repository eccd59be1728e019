"""The extractors, one module per family of formats (imported lazily by the registry)."""
