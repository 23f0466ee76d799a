"""The SSRF guard both ingest (pulls, pushes) and annotation (SEG by STOW-RS) check URLs with."""

from __future__ import annotations

import pytest

from medal.dicomweb_urls import UrlRefused, allowed_base

ALLOWED = ["https://pacs.hospital.example/dicom-web", "http://10.0.0.5:8042/dicom-web/"]


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("https://pacs.hospital.example/dicom-web", "https://pacs.hospital.example/dicom-web"),
        ("https://PACS.hospital.example:443/dicom-web/studies/", "https://PACS.hospital.example:443/dicom-web/studies"),
        ("http://10.0.0.5:8042/dicom-web", "http://10.0.0.5:8042/dicom-web"),
    ],
)
def test_urls_under_an_allowed_base_are_accepted(url: str, base: str) -> None:
    assert allowed_base(url, ALLOWED) == base


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://pacs.hospital.example/dicom-webx", "not-allowed"),  # a prefix of the path is not enough
        ("https://pacs.hospital.example:8443/dicom-web", "not-allowed"),
        ("http://pacs.hospital.example/dicom-web", "not-allowed"),
        ("http://169.254.169.254/latest", "not-allowed"),
        ("http://10.0.0.5:99999/dicom-web", "malformed"),  # an out-of-range port must be a refusal, not a 500
        ("http://10.0.0.5:port/dicom-web", "malformed"),
        ("file:///etc/passwd", "malformed"),
        ("https://user:secret@pacs.hospital.example/dicom-web", "malformed"),
        ("https://pacs.hospital.example/dicom-web?x=1", "malformed"),
    ],
)
def test_other_urls_are_refused_with_the_reason(url: str, problem: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        allowed_base(url, ALLOWED)
    assert refused.value.problem == problem
