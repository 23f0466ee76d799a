"""Object storage adapters."""

from __future__ import annotations

from medal.settings import Settings
from medal.storage.base import (
    IntegrityError,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    StoredObject,
    content_key,
    sha256_hex,
)


def build_store(settings: Settings) -> ObjectStore:
    """S3 when ``MEDAL_S3_ENDPOINT`` is set, else a directory under ``MEDAL_DATA_DIR``."""
    if settings.s3_endpoint:
        from medal.storage.s3 import S3Store

        return S3Store(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key.get_secret_value(),
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
    from medal.storage.directory import DirectoryStore

    return DirectoryStore(settings.objects_dir)


__all__ = [
    "IntegrityError",
    "ObjectNotFound",
    "ObjectStore",
    "StorageError",
    "StoredObject",
    "build_store",
    "content_key",
    "sha256_hex",
]
