"""A PHI corpus with a canary in every attribute the profile touches goes in; no canary comes out.

Canaries sit in every Table E.1-1 attribute (top level, inside an unlisted sequence, inside a
UID-reference sequence), in private elements and private sequences, in the original UIDs, in dates,
and in file, folder and zip member names. After ingest over HTTP (multipart and zip, accepted,
quarantined and refused instances) no canary may appear in any stored object, object key, database
row (the SQLite file holds every row and every outbox message), log line or HTTP answer.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from medal.app import build_app
from medal.local_server import serve_in_thread
from medal.settings import Settings
from services.ingest.profile import load_profile
from tests.ingest.conftest import ct_dataset, encode
from tests.ingest.test_profile import vr_of

CANARY_DATE = "19370521"
UID_ROOT = "1.2.826.0.1.3680043.10.999."
SKIPPED_GROUPS = (0x0000, 0x0002, 0xFFFA, 0xFFFC)
# Values shorter than six characters (AS, binary numbers) are planted but not searched for: a short
# string can occur by chance inside compressed PNG bytes.
SEARCHED = [b"QZX", CANARY_DATE.encode(), UID_ROOT.encode()]


def canary(vr: str, n: int) -> object | None:
    text = {
        "PN": f"QZX{n}^QZXPERSON",
        "DA": CANARY_DATE,
        "DT": CANARY_DATE + "101010",
        "UI": f"{UID_ROOT}{n}",
        "DS": "73918264",
        "IS": "7391826",
        "AS": "077Y",
        "CS": f"QZX{n}",
        "AE": f"QZX{n}",
        "SH": f"QZX{n}",
        "UR": f"http://qzx{n}.example",
        "OB": f"QZX{n}OB".encode(),
        "OW": f"QZX{n}OW".encode(),
        "UN": f"QZX{n}UN".encode(),
        "FL": 7.5,
        "FD": 7.5,
        "US": 7,
        "SS": 7,
        "UL": 7,
        "SL": 7,
    }
    if vr == "TM":
        return None  # times are kept under the Modified Dates option (PS3.15 E.3.6)
    return text.get(vr, f"QZX{n} free text")


def plant(ds: Dataset, depth: int = 0) -> None:
    for n, row in enumerate(load_profile().rows):
        if row.tag == "ODDGROUP" or "X" in row.tag:
            continue
        tag = int(row.tag, 16)
        if Tag(tag).group in SKIPPED_GROUPS or tag in (0x00080018, 0x0020000D, 0x0020000E):
            continue
        vr = vr_of(tag)
        if vr == "SQ":
            item = Dataset()
            item.PersonName = f"QZX{n}^SEQ"
            item.ReferencedSOPInstanceUID = f"{UID_ROOT}{n}"
            item.ObservationDateTime = CANARY_DATE + "000000"
            ds.add_new(tag, "SQ", Sequence([item]))
            continue
        value = canary(vr, n)
        if value is not None:
            ds.add_new(tag, vr, value)
    ds.add_new(0x60004000, "LT", "QZX overlay comment")
    ds.add_new(0x50000010, "US", 1)
    block = ds.private_block(0x0009, "QZX CREATOR", create=True)
    block.add_new(0x01, "LO", "QZX private value")
    private_item = Dataset()
    private_item.PatientName = "QZX^PRIVATESEQ"
    block.add_new(0x02, "SQ", Sequence([private_item]))
    if depth == 0:
        nested = Dataset()
        plant(nested, depth + 1)
        ds.AnatomicRegionSequence = Sequence([nested])  # not in the table: kept and cleaned recursively


def phi_instance(number: int, *, burned_in: bool = False) -> bytes:
    ds = ct_dataset()
    plant(ds)
    ds.PatientName = "QZXPATIENT^JANE"
    ds.PatientID = "QZXPID-1"
    ds.PatientBirthDate = CANARY_DATE
    ds.StudyInstanceUID = f"{UID_ROOT}90001"
    ds.SeriesInstanceUID = f"{UID_ROOT}90002"
    ds.SOPInstanceUID = f"{UID_ROOT}9100{number}"
    ds.FrameOfReferenceUID = f"{UID_ROOT}90003"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.SourceApplicationEntityTitle = "QZXAE"
    reference = Dataset()
    reference.ReferencedSOPClassUID = ds.SOPClassUID
    reference.ReferencedSOPInstanceUID = f"{UID_ROOT}91009"
    ds.SourceImageSequence = Sequence([reference])
    ds.add_new(0x0040A124, "UI", f"QZX.{number}")  # invalid UID: pydicom's warning would quote it
    if burned_in:
        ds.BurnedInAnnotation = "YES"
    return encode(ds)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    settings = Settings(data_dir=tmp_path / "medal", api_keys=[])
    app = build_app(settings, ["ingest", "annotation"], consume=True, migrate=True)
    with serve_in_thread(app) as base:
        yield base, settings.data_dir


def leaks(blob: bytes) -> list[bytes]:
    return [canary for canary in SEARCHED if canary in blob]


def test_no_canary_anywhere_after_ingest(embedded: tuple[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    base, data_dir = embedded
    caplog.set_level(logging.DEBUG)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("QZXFOLDER-Smith/QZXFILE-3.dcm", phi_instance(3))
        bundle.writestr("QZXFOLDER-Smith/QZXNOTES.txt", b"QZX notes about the patient")
    answers = []
    with httpx.Client(timeout=120) as client:
        files = [
            ("files", ("QZXFILE-1.dcm", phi_instance(1), "application/dicom")),
            ("files", ("QZXFILE-2.dcm", phi_instance(2, burned_in=True), "application/dicom")),
            ("files", ("QZXFILE-refused.dcm", b"QZX not dicom at all", "application/dicom")),
            ("files", ("QZXARCHIVE.zip", archive.getvalue(), "application/zip")),
        ]
        response = client.post(f"{base}/ingest/v1/projects/canary/instances", files=files)
        assert response.status_code == 200, response.text
        answers.append(response.content)
        body = response.json()
        outcomes = [(r["outcome"], r["code"]) for r in body["results"]]
        assert outcomes == [
            ("accepted", None),
            ("quarantined", None),
            ("refused", "not_dicom"),
            ("accepted", None),
            ("refused", "not_dicom"),
        ]
        answers.append(client.get(f"{base}/ingest/v1/jobs/{body['job']['id']}").content)
        answers.append(client.get(f"{base}/ingest/v1/projects/canary/studies").content)
        answers.append(client.get(f"{base}/ingest/v1/projects/canary/quarantine").content)
        images = client.get(f"{base}/annotation/v1/projects/canary/images").content
        answers.append(images)

    found: dict[str, list[bytes]] = {}
    stored = [path for path in data_dir.rglob("*") if path.is_file()]
    assert any(path.suffix == ".dcm" for path in stored) and any(path.suffix == ".png" for path in stored)
    for path in stored:
        for where, blob in ((f"key {path.relative_to(data_dir)}", str(path).encode()), (str(path), path.read_bytes())):
            if leaks(blob):
                found[where] = leaks(blob)
    for record in caplog.records:
        line = logging.Formatter("%(name)s %(message)s").format(record).encode()
        if leaks(line):
            found[f"log {record.name}"] = leaks(line)
    for number, answer in enumerate(answers):
        if leaks(answer):
            found[f"answer {number}"] = leaks(answer)
    assert found == {}
