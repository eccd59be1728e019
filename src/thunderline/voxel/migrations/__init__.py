"""Alembic migrations of the voxel store, applied programmatically on first use."""
