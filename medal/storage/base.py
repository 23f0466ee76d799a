"""Object storage: one small interface, a directory and an S3 implementation.

Objects are written under keys derived from their content hash, so a retried write is harmless
and keys carry no patient data.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

_KEY = re.compile(r"^[a-z0-9][a-z0-9/._-]{0,511}$")


class StorageError(RuntimeError):
    """The store could not be reached or refused an operation."""


class ObjectNotFound(KeyError):
    """No object under that key."""


class IntegrityError(StorageError):
    """Stored bytes do not match the hash they were stored under."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size: int
    created: bool  # False when an identical object was already there


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_key(prefix: str, digest: str, extension: str) -> str:
    """``prefix/ab/abcdef….ext``: fan-out on the first two hex digits."""
    key = f"{prefix}/{digest[:2]}/{digest}.{extension}"
    validate_key(key)
    return key


def validate_key(key: str) -> None:
    if not _KEY.match(key) or ".." in key or "//" in key:
        raise ValueError(f"invalid object key {key!r}: lowercase letters, digits and /._- only")


class ObjectStore(ABC):
    """What services need from object storage. Implementations are thread-safe."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Store ``data`` under ``key`` unless an object with the same bytes is there already.

        An existing object with *different* bytes is an error: keys are write-once.
        """

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Raise :class:`ObjectNotFound` when absent."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; absent keys are not an error."""

    @abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key that starts with ``prefix``, sorted."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`StorageError` when the store is not usable (readiness)."""

    def put_content(self, prefix: str, data: bytes, extension: str, content_type: str) -> StoredObject:
        """Store under a key made from the bytes' SHA-256."""
        return self.put(content_key(prefix, sha256_hex(data), extension), data, content_type)
