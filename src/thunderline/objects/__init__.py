"""Content-addressed payload stores behind one protocol (:class:`ObjectStore`)."""

from thunderline.objects.base import ObjectStore, StoredObject, hash_stream, sha_from_ref, verify
from thunderline.objects.local import LocalObjectStore

__all__ = [
    "LocalObjectStore",
    "ObjectStore",
    "StoredObject",
    "hash_stream",
    "sha_from_ref",
    "verify",
]
