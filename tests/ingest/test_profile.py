"""Every row of the pinned Table E.1-1 does what its action says, at the top level and nested."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from services.ingest.deid import DeidOptions, deidentify, pseudonymous_uid, shift_date_value
from services.ingest.profile import RESOLVED_COMPOUND, TABLE_PATH, ProfileRow, load_profile, parse_table
from tests.ingest.conftest import SECRET, ct_dataset

PROFILE = load_profile()
CANARY_DATE = "19370521"
CANARY_UID = "1.2.826.0.1.3680043.10.999.1"
EXACT_ROWS = [row for row in PROFILE.rows if row.tag not in ("ODDGROUP",) and "X" not in row.tag]
PINNED_FINGERPRINT = "08fcc0196165107d29c611a803a5d88b20bce38df953646ba47b73eb2173c38a"
PSEUDONYMISED = {0x00100010, 0x00100020, 0x00200010}  # Z, written with the keyed pseudonym (a non-zero dummy)
PROTECTED = {0x00080018, 0x0020000D, 0x0020000E, 0x00020003}  # rewritten by the de-identifier itself


def canary_value(vr: str) -> object:
    values: dict[str, object] = {
        "PN": "CANARY^PERSON",
        "DA": CANARY_DATE,
        "DT": CANARY_DATE + "101010",
        "TM": "101010",
        "UI": CANARY_UID,
        "AS": "077Y",
        "DS": "77.7",
        "IS": "777",
        "CS": "CANARYCS",
        "AE": "CANARYAE",
        "SH": "CANARYSH",
        "UR": "http://canary.example",
        "FL": 7.77,
        "FD": 7.77,
        "US": 777,
        "SS": 777,
        "UL": 777,
        "SL": 777,
        "OB": b"CANARYOB",
        "OW": b"CANARYOW",
        "UN": b"CANARYUN",
    }
    return values.get(vr, "CANARY TEXT")


def vr_of(tag: int) -> str:
    try:
        return str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        return "LO"


def add_canary(ds: Dataset, tag: int) -> str:
    vr = vr_of(tag)
    if vr == "SQ":
        item = Dataset()
        item.PatientName = "CANARY^NESTED"
        item.ReferencedSOPInstanceUID = CANARY_UID
        ds.add_new(tag, "SQ", Sequence([item]))
    else:
        ds.add_new(tag, vr, canary_value(vr))
    return vr


def test_table_is_pinned_and_complete() -> None:
    assert "innolitics/dicom-standard@" in PROFILE.edition and PROFILE.version == "medal-e1-1-r1"
    assert len(PROFILE.rows) == 460
    assert {row.basic for row in PROFILE.rows} <= {"X", "Z", "D", "U", "X/Z", "X/D", "X/Z/D", "Z/D", "X/Z/U*"}
    by_name = {row.name: row for row in PROFILE.rows}
    assert by_name["Patient's Name"].basic == "Z" and by_name["Patient's Birth Date"].options == {}
    assert by_name["Study Date"].options == {"FullDates": "K", "ModDates": "C"}
    assert by_name["Source Image Sequence"].basic == "X/Z/U*"


def test_a_changed_row_without_a_version_bump_fails() -> None:
    """Edit a row (a new edition, a fix) → bump ``profile-version`` in the table and this fingerprint."""
    rows = [
        line for line in TABLE_PATH.read_text(encoding="utf-8").splitlines(keepends=True) if not line.startswith("#")
    ]
    fingerprint = hashlib.sha256("".join(rows).encode()).hexdigest()
    assert (PROFILE.version, fingerprint) == ("medal-e1-1-r1", PINNED_FINGERPRINT)


def test_unknown_actions_are_refused_when_loading() -> None:
    text = TABLE_PATH.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="unknown Basic Profile action"):
        parse_table(text.replace("00100010\tZ\t", "00100010\tK\t"))


def expected_action(row: ProfileRow, options: frozenset[str]) -> str:
    for option in sorted(options):
        if option in row.options:
            return row.options[option]
    return RESOLVED_COMPOUND.get(row.basic, row.basic)


@pytest.mark.parametrize("dates", ["shift", "remove"])
@pytest.mark.parametrize("nested", [False, True], ids=["top", "nested"])
def test_every_row(dates: str, nested: bool) -> None:
    """One dataset per row would be slow; each row gets its own element in one of a few datasets."""
    options = DeidOptions(dates="shift" if dates == "shift" else "remove")
    failures: list[str] = []
    for row in EXACT_ROWS:
        tag = int(row.tag, 16)
        if tag in PROTECTED or Tag(tag).group in (0x0000, 0x0002, 0xFFFA, 0xFFFC):
            continue
        ds = ct_dataset()
        ds.PatientID = "PATIENT-1"
        target = ds
        if nested:
            holder = Dataset()
            ds.AnatomicRegionSequence = Sequence([holder])  # not in the table: kept, items cleaned
            target = holder
        vr = add_canary(target, tag)
        deidentify(ds, secret=SECRET, project="p", options=options)
        if nested:
            target = ds.AnatomicRegionSequence[0]
        action = expected_action(row, options.applied)
        if action == "C" and vr not in ("DA", "DT", "TM"):
            action = RESOLVED_COMPOUND.get(row.basic, row.basic)  # nothing to shift
        problem = _check(target, tag, vr, action, top=not nested)
        if problem:
            failures.append(f"{row.tag} {row.name} ({row.basic}→{action}, {vr}): {problem}")
    assert failures == []


def _check(ds: Dataset, tag: int, vr: str, action: str, *, top: bool) -> str | None:
    present = tag in ds
    value: Any = ds[tag].value if present else None
    if action == "X":
        return None if not present else "not removed"
    if not present:
        return "removed"
    if action == "Z" and tag in PSEUDONYMISED and top:
        return None if value and "CANARY" not in str(value) else "not pseudonymised"
    if action == "Z":
        return None if value in ("", None, b"") or (vr == "SQ" and len(value) == 0) else "not emptied"
    if action == "D":
        if vr == "SQ":
            return None if len(value) == 1 and len(value[0]) == 0 else "sequence not replaced by a dummy"
        return None if value not in ("", None) and value != canary_value(vr) else "no dummy"
    if action == "U":
        if vr == "SQ":
            return _check_nested_clean(value)
        return None if value == pseudonymous_uid(SECRET, "p", CANARY_UID) else "UID not remapped"
    if action == "C":
        if vr in ("DA", "DT"):
            return (
                None if value and value != canary_value(vr) and not str(value).startswith(CANARY_DATE) else "no shift"
            )
        return None if value == canary_value(vr) else "not kept"
    if action == "K":
        return _check_nested_clean(value) if vr == "SQ" else (None if value == canary_value(vr) else "changed")
    return f"unexpected action {action}"


def _check_nested_clean(sequence: Sequence) -> str | None:
    item = sequence[0]
    if str(item.get("PatientName", "")) != "":
        return "nested name kept"
    if str(item.get("ReferencedSOPInstanceUID", "")) != pseudonymous_uid(SECRET, "p", CANARY_UID):
        return "nested reference not remapped"
    return None


@pytest.mark.parametrize("tag", [0x50001000, 0x60003000, 0x60024000, 0x00091001])
def test_repeating_groups_and_private_elements_are_removed(tag: int) -> None:
    ds = ct_dataset()
    if Tag(tag).is_private:
        block = ds.private_block(0x0009, "CANARY CREATOR", create=True)
        block.add_new(0x01, "LO", "CANARY private")
    else:
        ds.add_new(tag, "OB" if tag != 0x60024000 else "LT", b"CANARY" if tag != 0x60024000 else "CANARY")
    deidentify(ds, secret=SECRET, project="p")
    assert tag not in ds
    assert not any(element.tag.is_private for element in ds)


def test_date_shift_is_per_patient_and_keeps_intervals() -> None:
    def study_date(patient: str, date: str) -> str:
        ds = ct_dataset()
        ds.PatientID = patient
        ds.StudyDate = date
        deidentify(ds, secret=SECRET, project="p")
        return str(ds.StudyDate)

    first, later = study_date("A", "20200101"), study_date("A", "20200111")
    assert first != "20200101" and int(later) - int(first) == 10
    assert study_date("B", "20200101") != first or study_date("C", "20200101") != first
    assert shift_date_value("20200131\\bogus", "DA", 1) == "20200201"
    assert shift_date_value("20200131120000.5+0100", "DT", -31) == "20191231120000.5+0100"


def test_remove_policy_writes_removed_and_no_modified_dates_code() -> None:
    ds = ct_dataset()
    ds.StudyDate = "20200101"
    deidentify(ds, secret=SECRET, project="p", options=DeidOptions(dates="remove"))
    assert ds.StudyDate == "" and ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert [item.CodeValue for item in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert ds.PatientIdentityRemoved == "YES" and "PS3.15" in str(ds.DeidentificationMethod)
