"""What the DICOMweb read routes answer: QIDO-RS matches and WADO-RS objects of one project.

Only de-identified data: the attributes come from the stored de-identified objects (their headers),
the UIDs are the pseudonymous ones, and instances still in quarantine are invisible. Matching is on
the UIDs, PatientID and the modality (exact); other query keys are ignored (PS3.18 allows it).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array
from pydicom.uid import UID
from sqlalchemy import Select, or_, select

from medal.db.schema import ingest as tables
from medal.platform import Platform
from services.ingest.errors import NotFound

STUDY_KEYS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDescription",
)
SERIES_KEYS = ("StudyInstanceUID", "Modality", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "SeriesDate")
INSTANCE_KEYS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
)
MATCH_KEYS = {
    "StudyInstanceUID": "0020000D",
    "SeriesInstanceUID": "0020000E",
    "SOPInstanceUID": "00080018",
    "PatientID": "00100020",
    "Modality": "00080060",
    "ModalitiesInStudy": "00080061",
}
s, se, i = tables.studies, tables.series, tables.instances


class DicomwebNotFound(NotFound, code="dicomweb-not-found"):
    """No such study, series, instance or frame in this project (or it waits in quarantine)."""


def filters(params: Mapping[str, str]) -> dict[str, str]:
    """The supported matching keys of a QIDO-RS query string (by keyword or tag)."""
    by_tag = {tag: keyword for keyword, tag in MATCH_KEYS.items()}
    found = {}
    for key, value in params.items():
        keyword = by_tag.get(key.upper(), key)
        if keyword in MATCH_KEYS and value and "*" not in value and "?" not in value:
            found[keyword] = value
    return found


def _visible() -> Any:
    return or_(i.c.quarantined.is_(False), i.c.released_at.is_not(None))


def _base(project: str) -> Select[Any]:
    return (
        select(s.c.study_uid, se.c.series_uid, se.c.modality, i.c.sop_uid, i.c.dicom_key, s.c.patient_pseudo_id)
        .join(se, se.c.study_id == s.c.id)
        .join(i, i.c.series_id == se.c.id)
        .where(s.c.project == project, _visible())
    )


def _matched(query: Select[Any], match: Mapping[str, str]) -> Select[Any]:
    columns = {
        "StudyInstanceUID": s.c.study_uid,
        "SeriesInstanceUID": se.c.series_uid,
        "SOPInstanceUID": i.c.sop_uid,
        "PatientID": s.c.patient_pseudo_id,
        "Modality": se.c.modality,
    }
    for keyword, value in match.items():
        if keyword in columns:
            query = query.where(columns[keyword].in_(value.split(",")))
    return query


async def _rows(platform: Platform, query: Select[Any]) -> list[Any]:
    async with platform.db.connect() as conn:
        return list((await conn.execute(query)).all())


def _header(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


async def _read(platform: Platform, key: str, *, header_only: bool = True) -> Dataset:
    data = await asyncio.to_thread(platform.store.get, key)
    if header_only:
        return await asyncio.to_thread(_header, data)
    return await asyncio.to_thread(pydicom.dcmread, io.BytesIO(data))


def _json(header: Dataset, keys: Sequence[str], **extra: Any) -> dict[str, Any]:
    picked = Dataset()
    for keyword in keys:
        if keyword in header:
            picked[keyword] = header[keyword]
    for keyword, value in extra.items():
        setattr(picked, keyword, value)
    answer: dict[str, Any] = picked.to_json_dict()
    return answer


async def studies(
    platform: Platform, project: str, match: Mapping[str, str], limit: int, offset: int
) -> list[dict[str, Any]]:
    query = _matched(_base(project), {k: v for k, v in match.items() if k != "Modality"})
    rows = await _rows(platform, query.order_by(s.c.study_uid, se.c.series_uid, i.c.sop_uid))
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row.study_uid, []).append(row)
    wanted = match.get("ModalitiesInStudy") or match.get("Modality")
    if wanted:
        modalities = set(wanted.split(","))
        grouped = {uid: found for uid, found in grouped.items() if modalities & {row.modality for row in found}}
    answer = []
    for found in list(grouped.values())[offset : offset + limit]:
        header = await _read(platform, found[0].dicom_key)
        answer.append(
            _json(
                header,
                STUDY_KEYS,
                ModalitiesInStudy=sorted({row.modality for row in found}),
                NumberOfStudyRelatedSeries=len({row.series_uid for row in found}),
                NumberOfStudyRelatedInstances=len(found),
            )
        )
    return answer


async def series(platform: Platform, project: str, study: str, match: Mapping[str, str]) -> list[dict[str, Any]]:
    query = _matched(_base(project).where(s.c.study_uid == study), match)
    rows = await _rows(platform, query.order_by(se.c.series_uid, i.c.sop_uid))
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row.series_uid, []).append(row)
    answer = []
    for found in grouped.values():
        header = await _read(platform, found[0].dicom_key)
        answer.append(_json(header, SERIES_KEYS, NumberOfSeriesRelatedInstances=len(found)))
    return answer


async def instances(
    platform: Platform, project: str, study: str, series_uid: str | None, match: Mapping[str, str]
) -> list[dict[str, Any]]:
    rows = await _instance_rows(platform, project, study, series_uid, None, match, required=False)
    return [_json(await _read(platform, row.dicom_key), INSTANCE_KEYS) for row in rows]


async def _instance_rows(
    platform: Platform,
    project: str,
    study: str,
    series_uid: str | None,
    sop: str | None,
    match: Mapping[str, str] | None = None,
    *,
    required: bool = True,
) -> list[Any]:
    query = _base(project).where(s.c.study_uid == study)
    if series_uid is not None:
        query = query.where(se.c.series_uid == series_uid)
    if sop is not None:
        query = query.where(i.c.sop_uid == sop)
    rows = await _rows(platform, _matched(query, match or {}).order_by(se.c.series_uid, i.c.sop_uid))
    if required and not rows:
        raise DicomwebNotFound("no such study, series or instance in this project")
    return rows


async def metadata(
    platform: Platform, project: str, study: str, series_uid: str | None = None, sop: str | None = None
) -> list[dict[str, Any]]:
    rows = await _instance_rows(platform, project, study, series_uid, sop)
    answer = []
    for row in rows:
        item: dict[str, Any] = (await _read(platform, row.dicom_key)).to_json_dict()
        answer.append(item)
    return answer


async def objects(
    platform: Platform, project: str, study: str, series_uid: str | None = None, sop: str | None = None
) -> AsyncIterator[tuple[str, bytes]]:
    """The stored Part-10 objects, read one at a time while the answer streams (404 before it starts)."""
    rows = await _instance_rows(platform, project, study, series_uid, sop)

    async def each() -> AsyncIterator[tuple[str, bytes]]:
        for row in rows:
            yield "application/dicom", await asyncio.to_thread(platform.store.get, row.dicom_key)

    return each()


def frame_bytes(ds: Dataset, numbers: Sequence[int]) -> list[bytes]:
    """Frames (1-based) as uncompressed little-endian pixel bytes."""
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if any(n < 1 or n > count for n in numbers):
        raise DicomwebNotFound(f"this instance has frames 1 to {count}")
    syntax = UID(str(ds.file_meta.TransferSyntaxUID))
    if not syntax.is_compressed and syntax.is_little_endian and int(ds.BitsAllocated) >= 8:
        size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * int(ds.BitsAllocated) // 8
        return [bytes(ds.PixelData[(n - 1) * size : n * size]) for n in numbers]
    return [pixel_array(ds, index=n - 1, raw=True).tobytes() for n in numbers]


async def frames(
    platform: Platform, project: str, study: str, series_uid: str, sop: str, numbers: Sequence[int]
) -> AsyncIterator[tuple[str, bytes]]:
    (row,) = await _instance_rows(platform, project, study, series_uid, sop)
    ds = await _read(platform, row.dicom_key, header_only=False)
    if "PixelData" not in ds:
        raise DicomwebNotFound("this instance has no pixel data")
    parts = await asyncio.to_thread(frame_bytes, ds, numbers)

    async def each() -> AsyncIterator[tuple[str, bytes]]:
        for part in parts:
            yield "application/octet-stream", part

    return each()
