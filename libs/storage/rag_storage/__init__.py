"""Object storage (S3, R2, MinIO, moto) for originals and parsed text."""

from rag_storage.store import (
    MultipartWriter,
    ObjectNotFound,
    ObjectStore,
    PendingUpload,
    StorageError,
    StoredObject,
)

__all__ = [
    "MultipartWriter",
    "ObjectNotFound",
    "ObjectStore",
    "PendingUpload",
    "StorageError",
    "StoredObject",
]
