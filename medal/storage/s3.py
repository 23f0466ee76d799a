"""Object storage on MinIO or any S3 server, through the minio client."""

from __future__ import annotations

import io
from collections.abc import Iterator

import urllib3
from minio import Minio
from minio.error import S3Error

from medal.storage.base import (
    IntegrityError,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    StoredObject,
    sha256_hex,
    validate_key,
)

_SHA_META = "sha256"  # stored as x-amz-meta-sha256: our own checksum, never the ETag


class S3Store(ObjectStore):
    """Write-once objects in one bucket. The bucket is created when missing."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds * 6),
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            maxsize=16,
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self.bucket = bucket
        self._bucket_ready = False

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            if not self.client.bucket_exists(bucket_name=self.bucket):
                try:
                    self.client.make_bucket(bucket_name=self.bucket)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"S3 bucket {self.bucket!r} unavailable: {type(exc).__name__}") from exc
        self._bucket_ready = True

    def _stored_sha(self, key: str) -> str | None:
        try:
            stat = self.client.stat_object(bucket_name=self.bucket, object_name=key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return None
            raise StorageError(f"S3 stat failed for {key}: {exc.code}") from exc
        metadata = {k.lower(): v for k, v in (stat.metadata or {}).items()}
        return metadata.get(f"x-amz-meta-{_SHA_META}") or ""

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        validate_key(key)
        self._ensure_bucket()
        digest = sha256_hex(data)
        existing = self._stored_sha(key)
        if existing is not None:
            if existing != digest and sha256_hex(self.get(key)) != digest:
                raise IntegrityError(f"object {key} exists with different content")
            return StoredObject(key, digest, len(data), created=False)
        try:
            self.client.put_object(
                bucket_name=self.bucket,
                object_name=key,
                data=io.BytesIO(data),
                length=len(data),
                content_type=content_type,
                metadata={_SHA_META: digest},
            )
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"S3 put failed for {key}: {type(exc).__name__}") from exc
        return StoredObject(key, digest, len(data), created=True)

    def get(self, key: str) -> bytes:
        validate_key(key)
        self._ensure_bucket()
        try:
            response = self.client.get_object(bucket_name=self.bucket, object_name=key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectNotFound(key) from None
            raise StorageError(f"S3 get failed for {key}: {exc.code}") from exc
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        validate_key(key)
        self._ensure_bucket()
        return self._stored_sha(key) is not None

    def delete(self, key: str) -> None:
        validate_key(key)
        self._ensure_bucket()
        try:
            self.client.remove_object(bucket_name=self.bucket, object_name=key)
        except S3Error as exc:
            raise StorageError(f"S3 delete failed for {key}: {exc.code}") from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        self._ensure_bucket()
        objects = self.client.list_objects(bucket_name=self.bucket, prefix=prefix or None, recursive=True)
        yield from sorted(obj.object_name for obj in objects if obj.object_name)

    def check(self) -> None:
        self._bucket_ready = False
        self._ensure_bucket()


def verify(store: ObjectStore, key: str, expected_sha256: str) -> None:
    """Raise :class:`IntegrityError` when an object's bytes no longer match their recorded hash."""
    if sha256_hex(store.get(key)) != expected_sha256:
        raise IntegrityError(f"object {key} does not match its recorded SHA-256")
