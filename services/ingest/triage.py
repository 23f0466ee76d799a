"""Burned-in text triage: which instances wait for a person before anyone may annotate them.

PS3.15 E.3.1: the Basic Profile does not clean pixels; ultrasound, secondary captures and screen
saves routinely carry names burned into the image. BurnedInAnnotation is Type 3, so an absent
value is not "NO". An instance is quarantined when it says YES, or when it is of a kind that
usually carries text and does not say NO. Runs on the source dataset (before de-identification
removes the series description). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydicom.dataset import Dataset

TEXT_PRONE_MODALITIES = frozenset({"US", "SC", "OT", "XC", "ES", "GM", "DOC", "SM", "OP", "XA", "RF", "IVUS"})
CROSS_SECTIONAL = frozenset({"CT", "MR", "PT", "NM"})
SECONDARY_CAPTURE_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
SCREEN_IMAGE_TYPES = frozenset({"SCREEN SAVE", "REPORTDATA", "SCREEN CAPTURE"})
SCREEN_DESCRIPTION = re.compile(r"dose|report|screen|save|capture", re.IGNORECASE)


def quarantine_reason(ds: Dataset) -> str | None:
    """A short reason (no values quoted) when the instance needs review, else None."""
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned == "YES":
        return "BurnedInAnnotation is YES"
    if burned == "NO":
        return None
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in TEXT_PRONE_MODALITIES:
        return f"{modality} images often carry burned-in text and BurnedInAnnotation is not NO"
    if str(ds.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE_CLASS_PREFIX):
        return "secondary capture without BurnedInAnnotation NO"
    image_type = {str(value).strip().upper() for value in _values(ds.get("ImageType"))}
    if image_type & SCREEN_IMAGE_TYPES:
        return "screen capture (ImageType) without BurnedInAnnotation NO"
    if "SECONDARY" in image_type and modality not in CROSS_SECTIONAL:
        return "secondary image without BurnedInAnnotation NO"
    if SCREEN_DESCRIPTION.search(str(ds.get("SeriesDescription", "") or "")):
        return "series described as a report or screen capture without BurnedInAnnotation NO"
    return None


def _values(value: object) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes)):
        return [value]
    return list(value) if isinstance(value, Iterable) else [value]
