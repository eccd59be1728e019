"""Voxels: the DAG truth layer (schema, builder, store, lineage, archive fan-out, CLI).

Public API::

    from thunderline.voxel import Voxel, VoxelBuilder, VoxelStore, PackageStage, doctor_report
"""

from thunderline.voxel.builder import VoxelBuilder
from thunderline.voxel.doctor import doctor_report
from thunderline.voxel.paging import VoxelFilter
from thunderline.voxel.schema import ChannelCoords, Checksums, Lineage, SpatialCoords, Voxel
from thunderline.voxel.store import PutResult, VoxelStore, open_voxel_store
from thunderline.voxel.verify import VoxelCheck

__all__ = [
    "ChannelCoords",
    "Checksums",
    "Lineage",
    "PutResult",
    "SpatialCoords",
    "Voxel",
    "VoxelBuilder",
    "VoxelCheck",
    "VoxelFilter",
    "VoxelStore",
    "doctor_report",
    "open_voxel_store",
]
