"""Typed errors of the voxel layer, each a subclass of the project's error tree.

Every class carries a short ``reason`` used in DLQ records and as a metric label.
"""

from __future__ import annotations

from thunderline.errors import ArtifactError, PathEscapeError, StageError


class VoxelError(StageError):
    """A voxel could not be built or stored (permanent unless a subclass says otherwise)."""

    reason = "voxel"


class InvalidVoxelError(VoxelError):
    """The input does not make a valid voxel (bad coords, missing payload reference...)."""

    reason = "invalid_voxel"


class LineageCycleError(VoxelError):
    """The requested lineage would make a voxel its own ancestor."""

    reason = "lineage_cycle"


class UnknownParentError(VoxelError):
    """A parent voxel named in the lineage does not exist."""

    reason = "unknown_parent"


class VoxelNotFoundError(VoxelError):
    """No voxel with the given id (or id prefix)."""

    reason = "voxel_not_found"


class InvalidVoxelIdError(VoxelNotFoundError):
    """An id or id prefix holding something other than hex digits and ``-``."""

    reason = "invalid_voxel_id"


class PayloadMissingError(VoxelError):
    """The payload a voxel points at is in neither the database nor the object store."""

    reason = "payload_missing"


class ArchiveError(ArtifactError):
    """An archive cannot be expanded safely (permanent)."""

    reason = "archive"


class ArchiveBombError(ArchiveError):
    """An archive exceeds the uncompressed-size or compression-ratio limit (zip bomb)."""

    reason = "archive_bomb"


class ArchiveTooManyMembersError(ArchiveError):
    """An archive has more members than ``archive_max_members``."""

    reason = "archive_too_many_members"


class ArchiveUnsafeMemberError(PathEscapeError):
    """A member has an absolute path, a ``..`` component, or is a link or device."""

    reason = "archive_unsafe_member"


class ArchiveCorruptError(ArchiveError):
    """The archive cannot be read (truncated, bad CRC, not the format it claims)."""

    reason = "archive_corrupt"


class HasDescendantsError(VoxelError):
    """A voxel with descendants cannot be deleted alone (their lineage would dangle)."""

    reason = "has_descendants"


class DuplicateRejectedError(ArtifactError):
    """``TL_DUPLICATE_POLICY=reject``: the same bytes are already stored from another source."""

    reason = "duplicate"
