"""The ingest service's app: de-identification and rasterisation of uploaded DICOM."""

import logging
import warnings

from fastapi import FastAPI

from medal.web import service_app
from services.ingest.api import router
from services.ingest.dicomweb_read import router as read_router
from services.ingest.pacs_api import router as pacs_router
from services.ingest.stow import router as stow_router


class WithholdValues(logging.Filter):
    """pydicom's warnings quote values from the file (names, UIDs): keep the event, drop the text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = "pydicom reported a problem with an element (text withheld: it may quote patient data)"
        record.args = ()
        return True


def withhold_pydicom_values() -> None:
    logger = logging.getLogger("pydicom")
    if not any(isinstance(existing, WithholdValues) for existing in logger.filters):
        logger.addFilter(WithholdValues())
    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")


def create_app() -> FastAPI:
    withhold_pydicom_values()
    return service_app(
        "ingest",
        "Takes DICOM in, strips patient identity, turns pixels into images.",
        [router, pacs_router, stow_router, read_router],
    )
