"""multipart/related bodies (DICOMweb) parsed as a stream: each part spooled to a temporary file."""

from __future__ import annotations

import tempfile
from typing import IO, Any

from python_multipart.multipart import MultipartParser, parse_options_header

from services.ingest.bodies import SPOOL_IN_MEMORY


class SpooledParts:
    """Callbacks of the streaming multipart parser: one spooled file per part, with its content type."""

    def __init__(self) -> None:
        self.files: list[tuple[str, IO[bytes]]] = []
        self._field = b""
        self._value = b""
        self._headers: dict[str, str] = {}
        self._current: IO[bytes] | None = None
        self.complete = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: setattr(self, "_field", self._field + data[start:end]),
            "on_header_value": lambda data, start, end: setattr(self, "_value", self._value + data[start:end]),
            "on_header_end": self._header_end,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_end": lambda: setattr(self, "complete", True),
        }

    def _begin(self) -> None:
        self._headers = {}
        self._current = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed below

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").strip().lower()] = self._value.decode("latin-1").strip()
        self._field, self._value = b"", b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._current is not None:
            self._current.write(data[start:end])

    def _end(self) -> None:
        if self._current is not None:
            self._current.seek(0)
            content_type = self._headers.get("content-type", "").split(";")[0].strip().lower()
            self.files.append((content_type, self._current))
            self._current = None

    def close(self) -> None:
        for _type, file in self.files:
            file.close()
        if self._current is not None:
            self._current.close()


def parser_for(parts: SpooledParts, boundary: bytes) -> MultipartParser:
    return MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]  # a TypedDict of callables


def related_boundary(content_type: str) -> tuple[bytes, bytes, bytes]:
    """(media type, its ``type`` parameter, boundary) of a Content-Type header, lower-cased but the boundary."""
    media, params = parse_options_header(content_type)
    part_type = params.get(b"type", b"").strip(b'"').lower()
    return media.lower(), part_type, params.get(b"boundary", b"").strip(b'"')
