"""Object storage (S3, R2, MinIO, moto) for originals and parsed text."""

from rag_storage.store import (
    MultipartWriter,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    PendingUpload,
    StorageError,
    StoredObject,
)

__all__ = [
    "MultipartWriter",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectTooLarge",
    "PendingUpload",
    "StorageError",
    "StoredObject",
]
