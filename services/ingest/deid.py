"""PS3.15 Annex E Basic Application Level Confidentiality Profile, driven by the pinned Table E.1-1.

Every element of the dataset and of every nested sequence item gets the table's action:
X remove, Z empty, D dummy, U keyed UID, K keep (sequences cleaned recursively), C clean (dates
shifted by a keyed per-patient offset under Retain Longitudinal Temporal Information with Modified
Dates). Private elements are removed. Beyond the table (stricter, never weaker): unlisted person
names are emptied, unlisted dates follow the date rule, unlisted non-standard UIDs are remapped.
UIDs become HMAC-SHA256 UIDs in 2.25 form, keyed by a deployment secret and the project, so a
study stays linked across uploads. Pure functions: no I/O. See docs/adr/0005-deidentification-profile.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
from dataclasses import dataclass, field
from typing import Any, Literal

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from services.ingest.profile import Profile, load_profile

DatePolicy = Literal["shift", "remove"]
STANDARD_UID_ROOT = "1.2.840.10008."
DATE_VRS = frozenset({"DA", "DT"})
DEFINITION_UID_KEYWORDS = frozenset(
    {"TransferSyntaxUID", "CodingSchemeUID", "ContextUID", "MappingResourceUID", "PrivateInformationCreatorUID"}
)
IMPLEMENTATION_VERSION = "MEDAL_INGEST_1"
METHOD_CODES: dict[str, tuple[str, str]] = {
    "Basic": ("113100", "Basic Application Confidentiality Profile"),
    "ModDates": ("113107", "Retain Longitudinal Temporal Information Modified Dates"),
}
DUMMY_BY_VR: dict[str, Any] = {
    "AE": "ANONYMIZED",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "UR": "",
    "PN": "ANONYMIZED",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
}


@dataclass(frozen=True)
class DeidOptions:
    """``dates``: "shift" applies Retain Longitudinal Temporal Information with Modified Dates."""

    dates: DatePolicy = "shift"

    @property
    def applied(self) -> frozenset[str]:
        return frozenset({"ModDates"}) if self.dates == "shift" else frozenset()


@dataclass(frozen=True)
class DeidentifiedInstance:
    dataset: Dataset
    study_uid: str
    series_uid: str
    sop_uid: str
    patient_pseudo_id: str
    modality: str
    #: The source's study, series and SOP Instance UIDs: kept only by projects that opted in
    #: (services/ingest/uid_map.py), never logged (left out of the repr), never on the bus.
    original_uids: tuple[str, str, str] = field(default=("", "", ""), repr=False)


def pseudonymous_uid(secret: bytes, project: str, original: str) -> str:
    """A 2.25 UID (≤ 44 characters) from a keyed hash of the project and the original UID."""
    digest = hmac.new(secret, f"{project}\x00uid\x00{original}".encode(), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def pseudonymous_id(secret: bytes, project: str, kind: str, original: str) -> str:
    digest = hmac.new(secret, f"{project}\x00{kind}\x00{original}".encode(), hashlib.sha256).hexdigest()
    return digest[:20]


def date_offset_days(secret: bytes, project: str, patient_key: str) -> int:
    """A keyed per-patient shift of 1 to 10 years into the past (intervals between studies survive)."""
    digest = hmac.new(secret, f"{project}\x00date-offset\x00{patient_key}".encode(), hashlib.sha256).digest()
    return -(366 + int.from_bytes(digest[:4], "big") % 3287)


def shift_date_value(value: str, vr: str, days: int) -> str:
    """Shift DA/DT values (multi-valued allowed); unparseable values become empty."""
    shifted = []
    for part in str(value).split("\\"):
        part = part.strip()
        if len(part) < 8 or not part[:8].isdigit():
            continue
        try:
            day = dt.date(int(part[:4]), int(part[4:6]), int(part[6:8])) + dt.timedelta(days=days)
        except (ValueError, OverflowError):
            continue
        shifted.append(day.strftime("%Y%m%d") + (part[8:] if vr == "DT" else ""))
    return "\\".join(shifted)


class _Walker:
    """Applies the profile to one dataset tree; holds the keys, options and offset of one instance."""

    def __init__(self, profile: Profile, secret: bytes, project: str, options: DeidOptions, offset: int) -> None:
        self.profile = profile
        self.secret = secret
        self.project = project
        self.options = options.applied
        self.shift = options.dates == "shift"
        self.offset = offset

    def uid(self, value: str) -> str:
        value = str(value).strip().rstrip("\x00")
        if not value or value.startswith(STANDARD_UID_ROOT):
            return value
        return pseudonymous_uid(self.secret, self.project, value)

    def clean(self, ds: Dataset) -> None:
        for tag in list(ds.keys()):
            raw = ds.get_item(tag)
            if raw is None:
                continue
            tag_int = int(tag)
            if tag.is_private:
                del ds[tag]
                continue
            action = self.profile.action(tag_int, self.options)
            vr = raw.VR or _dictionary_vr(tag_int)
            if action is None:
                action = self._unlisted_action(tag_int, vr)
            elif action == "C" and vr == "TM":
                action = "K"  # times of day are kept with Modified Dates; only the dates move
            elif action == "C" and vr not in DATE_VRS:
                action = self.profile.basic_action(tag_int)  # nothing to shift: the Basic Profile decides
            self._apply(ds, tag_int, vr, action)

    def _unlisted_action(self, tag: int, vr: str) -> str:
        if vr == "PN":
            return "Z"
        if vr in DATE_VRS:
            return "C" if self.shift else "X"
        if vr == "UI":
            return "K" if _names_a_definition(tag) else "U"
        return "K"

    def _apply(self, ds: Dataset, tag: int, vr: str, action: str) -> None:
        if action == "X":
            del ds[tag]
            return
        if action == "K":
            if vr == "SQ":
                for item in ds[tag].value or []:
                    self.clean(item)
            return
        element = ds[tag]
        if action == "Z":
            element.value = Sequence() if vr == "SQ" else ("" if vr not in _BINARY_VRS else None)
        elif action == "D":
            element.value = Sequence([Dataset()]) if vr == "SQ" else _dummy(vr)
        elif action == "U":
            if vr == "SQ":
                for item in element.value or []:
                    self.clean(item)
            elif element.VM > 1:
                element.value = [self.uid(v) for v in element.value]
            elif element.value:
                element.value = self.uid(element.value)
        elif action == "C":
            element.value = shift_date_value(element.value or "", vr, self.offset) if element.value else ""
        else:
            raise ValueError(f"unsupported action {action!r}")


_BINARY_VRS = frozenset(
    {"FL", "FD", "SL", "SS", "UL", "US", "SV", "UV", "OB", "OW", "OF", "OD", "OL", "OV", "UN", "AT"}
)


def _names_a_definition(tag: int) -> bool:
    """Class, syntax and coding-scheme UIDs name definitions, not instances: never remapped."""
    keyword = keyword_for_tag(tag)
    return keyword.endswith("ClassUID") or keyword in DEFINITION_UID_KEYWORDS


def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        return "UN"


def _dummy(vr: str) -> Any:
    if vr in DUMMY_BY_VR:
        return DUMMY_BY_VR[vr]
    if vr == "UI":
        return "2.25.0"
    return b"\x00\x00"


def deidentify(
    source: Dataset, *, secret: bytes, project: str, options: DeidOptions | None = None, profile: Profile | None = None
) -> DeidentifiedInstance:
    """De-identify ``source`` in place (it is consumed) and return it with its pseudonymous ids."""
    options = options or DeidOptions()
    profile = profile or load_profile()
    original_patient = str(source.get("PatientID", "") or "").strip()
    original_study = str(source.get("StudyInstanceUID", "") or "")
    originals = (original_study, str(source.get("SeriesInstanceUID", "")), str(source.get("SOPInstanceUID", "")))
    patient_key = original_patient or f"study:{original_study}"
    patient = pseudonymous_id(secret, project, "patient", patient_key)
    offset = date_offset_days(secret, project, patient_key)
    walker = _Walker(profile, secret, project, options, offset)
    transfer_syntax = UID(str(source.file_meta.TransferSyntaxUID))
    walker.clean(source)

    study_uid = str(source.StudyInstanceUID)
    source.PatientID = patient
    source.PatientName = f"medal^{patient[:12]}"
    source.StudyID = pseudonymous_id(secret, project, "study", study_uid)[:16]
    source.PatientIdentityRemoved = "YES"
    _append_method(source, profile, options)
    source.LongitudinalTemporalInformationModified = "MODIFIED" if options.dates == "shift" else "REMOVED"

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = source.SOPClassUID
    meta.MediaStorageSOPInstanceUID = UID(str(source.SOPInstanceUID))
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    source.file_meta = meta
    source.preamble = b"\x00" * 128
    return DeidentifiedInstance(
        dataset=source,
        study_uid=study_uid,
        series_uid=str(source.SeriesInstanceUID),
        sop_uid=str(source.SOPInstanceUID),
        patient_pseudo_id=patient,
        modality=str(source.get("Modality", "OT") or "OT")[:16],
        original_uids=originals,
    )


def _append_method(ds: Dataset, profile: Profile, options: DeidOptions) -> None:
    method = f"medal PS3.15 Basic {profile.edition_tag} {profile.version[-2:]}"
    method += " ModDates" if options.dates == "shift" else ""
    values: list[str] = []
    if "DeidentificationMethod" in ds and ds["DeidentificationMethod"].value:
        existing = ds["DeidentificationMethod"]
        values = [str(v) for v in existing.value] if existing.VM > 1 else [str(existing.value)]
    ds.DeidentificationMethod = [*values, method[:64]] if values else method[:64]
    items = list(ds.get("DeidentificationMethodCodeSequence", Sequence()) or [])
    applied = ["Basic", *sorted(options.applied)]
    for key in applied:
        code, meaning = METHOD_CODES[key]
        item = Dataset()
        item.CodeValue = code
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)


def encode_dataset(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
