"""Both object stores honour one contract: write-once content keys, idempotent retries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medal.storage import IntegrityError, ObjectNotFound, ObjectStore, StorageError, sha256_hex
from medal.storage.directory import DirectoryStore
from medal.storage.s3 import S3Store, verify


@pytest.fixture(params=["directory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "directory":
        yield DirectoryStore(tmp_path / "objects")
    else:
        endpoint = request.getfixturevalue("s3_server")
        yield S3Store(endpoint, "testing", "testing", request.getfixturevalue("s3_bucket"))


def test_put_get_roundtrip_and_content_key(store: ObjectStore) -> None:
    data = b"\x89PNG fake image bytes"
    stored = store.put_content("display", data, "png", "image/png")
    digest = sha256_hex(data)
    assert stored.key == f"display/{digest[:2]}/{digest}.png"
    assert stored.created and stored.sha256 == digest and stored.size == len(data)
    assert store.get(stored.key) == data
    assert store.exists(stored.key)


def test_retried_put_is_harmless(store: ObjectStore) -> None:
    first = store.put_content("dicom", b"same bytes", "dcm", "application/dicom")
    second = store.put_content("dicom", b"same bytes", "dcm", "application/dicom")
    assert first.key == second.key
    assert not second.created
    assert list(store.keys("dicom/")) == [first.key]


def test_keys_are_write_once(store: ObjectStore) -> None:
    store.put("training/ab/object.png", b"one", "image/png")
    with pytest.raises(IntegrityError):
        store.put("training/ab/object.png", b"two", "image/png")
    assert store.get("training/ab/object.png") == b"one"


def test_missing_object(store: ObjectStore) -> None:
    assert not store.exists("display/00/none.png")
    with pytest.raises(ObjectNotFound):
        store.get("display/00/none.png")


def test_keys_listing_and_delete(store: ObjectStore) -> None:
    a = store.put_content("a", b"1", "bin", "application/octet-stream").key
    b = store.put_content("b", b"2", "bin", "application/octet-stream").key
    assert list(store.keys()) == sorted([a, b])
    assert list(store.keys("a/")) == [a]
    store.delete(a)
    store.delete(a)  # absent is fine
    assert list(store.keys()) == [b]


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/key", "UPPER/case", "a//b", "", "a/../b"])
def test_invalid_keys_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        store.put(key, b"x", "application/octet-stream")


def test_check_passes_when_usable(store: ObjectStore) -> None:
    store.check()


def test_verify_detects_tampering(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    stored = store.put_content("dicom", b"original", "dcm", "application/dicom")
    verify(store, stored.key, stored.sha256)
    (tmp_path / stored.key).write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        verify(store, stored.key, stored.sha256)


def test_unreachable_s3_gives_storage_error() -> None:
    store = S3Store("127.0.0.1:9", "k", "s", "bucket", timeout_seconds=0.5)
    with pytest.raises(StorageError, match="unavailable"):
        store.check()
