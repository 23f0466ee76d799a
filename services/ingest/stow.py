"""DICOMweb STOW-RS (PS3.18 10.5): ``POST /ingest/dicomweb/{project}/studies``.

The body is ``multipart/related; type="application/dicom"; boundary=…`` (the boundary is read from
the header). It is parsed as a stream: each part goes to a spooled temporary file, so a study
never sits whole in memory, and the byte count stops at the upload limit (413). Each part is one
job entry. The answer is ``application/dicom+json`` with ReferencedSOPSequence (stored, including
identical re-sends) and FailedSOPSequence (FailureReason per PS3.4 status codes); HTTP 200 when all
were stored, 202 when some failed, 409 when none was stored, 400 for a malformed body, 415 for the
wrong media type. References carry the de-identified UIDs: original UIDs never leave ingest, which
is also why ``/studies/{StudyInstanceUID}`` (a UID in the URL and access logs) is not offered.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from medal.access import Action, Caller, require
from medal.dependencies import PlatformDep, ProjectPath
from medal.errors import ApiError
from services.ingest.bodies import limited_chunks
from services.ingest.jobs import Submission
from services.ingest.multipart import SpooledParts, parser_for, related_boundary
from services.ingest.parsing import RefusedInstance
from services.ingest.schemas import InstanceResult

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])
DICOM_JSON = "application/dicom+json"
# PS3.4 C.4.2.1.4 / PS3.18 Table 10.5.3-2 failure reasons
PROCESSING_FAILURE = 0x0110
DUPLICATE_INSTANCE = 0x0111
NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
FAILURE_REASON_BY_CODE = {
    "absurd_dimensions": OUT_OF_RESOURCES,
    "unsupported_transfer_syntax": NOT_SUPPORTED,
    "no_pixel_data": NOT_SUPPORTED,
    "dicomdir": NOT_SUPPORTED,
    "missing_required": DOES_NOT_MATCH_SOP_CLASS,
    "duplicate_in_upload": DUPLICATE_INSTANCE,
    "conflict": DUPLICATE_INSTANCE,
    "raster_failed": PROCESSING_FAILURE,
    "unwritable": PROCESSING_FAILURE,
}


def _media(request: Request) -> bytes:
    media, part_type, boundary = related_boundary(request.headers.get("content-type", ""))
    if media != b"multipart/related":
        raise ApiError(415, "unsupported-media-type", 'send multipart/related; type="application/dicom"')
    if part_type and part_type != b"application/dicom":
        raise ApiError(415, "unsupported-media-type", "only application/dicom parts are accepted")
    if not boundary:
        raise ApiError(400, "bad-multipart", "the content type has no boundary")
    return boundary


def _failure(result: InstanceResult) -> dict[str, Any]:
    reason = FAILURE_REASON_BY_CODE.get(result.code or "", CANNOT_UNDERSTAND)
    return {"00081197": {"vr": "US", "Value": [reason]}}


@router.post(
    "/{project}/studies",
    summary="DICOMweb STOW-RS: store instances (multipart/related; type=application/dicom)",
    response_class=JSONResponse,
    responses={202: {"description": "Some failed"}, 409: {"description": "None stored"}, 415: {}, 413: {}},
)
async def store_instances(
    project: ProjectPath,
    request: Request,
    platform: PlatformDep,
    caller: Annotated[Caller, Depends(require(Action.INGEST))],
) -> JSONResponse:
    boundary = _media(request)
    parts = SpooledParts()
    parser = parser_for(parts, boundary)
    try:
        async for chunk in limited_chunks(request, platform.settings.max_upload_bytes):
            parser.write(chunk)
        parser.finalize()
        if not parts.files:
            raise ApiError(400, "bad-multipart", "the body holds no parts")
        submission = Submission(platform, project, "stow", caller.id)
        await submission.start()
        not_dicom = RefusedInstance("unsupported_part", "a part is not application/dicom")
        await submission.add_all(
            (None, not_dicom) if content_type and content_type != "application/dicom" else (file.read(), None)
            for content_type, file in parts.files
        )
        await submission.finish()
    except ApiError:
        raise
    except Exception as exc:  # the multipart parser raises its own error types on malformed bodies
        raise ApiError(400, "bad-multipart", f"the multipart body cannot be parsed ({type(exc).__name__})") from None
    finally:
        parts.close()
    return _answer(submission.results)


def _answer(results: list[InstanceResult]) -> JSONResponse:
    referenced, failed = [], []
    for result in results:
        if result.outcome == "refused":
            failed.append(_failure(result))
        else:
            referenced.append(
                {
                    "00081150": {"vr": "UI", "Value": [result.sop_class_uid]},
                    "00081155": {"vr": "UI", "Value": [result.sop_uid]},
                }
            )
    body: dict[str, Any] = {}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    status = 200 if not failed else 202 if referenced else 409
    return JSONResponse(body, status_code=status, media_type=DICOM_JSON)
