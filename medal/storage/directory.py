"""Object storage in a plain directory (embedded mode)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medal.storage.base import (
    IntegrityError,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    StoredObject,
    sha256_hex,
    validate_key,
)


class DirectoryStore(ObjectStore):
    """Each object is a file under ``root``; writes go to a temporary file and are renamed in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        validate_key(key)
        return self.root / key

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self._path(key)
        digest = sha256_hex(data)
        if path.exists():
            if sha256_hex(path.read_bytes()) != digest:
                raise IntegrityError(f"object {key} exists with different content")
            return StoredObject(key, digest, len(data), created=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredObject(key, digest, len(data), created=True)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str = "") -> Iterator[str]:
        found = (
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not path.name.startswith(".part-")
        )
        yield from sorted(key for key in found if key.startswith(prefix))

    def check(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise StorageError(f"object directory {self.root} is not a writable directory")
