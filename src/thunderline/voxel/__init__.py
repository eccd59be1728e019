"""Voxels: the DAG truth layer (schema, builder, store, lineage, archive fan-out, CLI).

Public API::

    from thunderline.voxel import Voxel, VoxelBuilder, VoxelStore, PackageStage, doctor_report
"""

from thunderline.voxel.builder import VoxelBuilder
from thunderline.voxel.doctor import doctor_report
from thunderline.voxel.schema import ChannelCoords, Checksums, Lineage, SpatialCoords, Voxel
from thunderline.voxel.store import PutResult, VerifyResult, VoxelStore, open_voxel_store

__all__ = [
    "ChannelCoords",
    "Checksums",
    "Lineage",
    "PutResult",
    "SpatialCoords",
    "VerifyResult",
    "Voxel",
    "VoxelBuilder",
    "VoxelStore",
    "doctor_report",
    "open_voxel_store",
]
