"""The ingest service's app: de-identification and rasterisation of uploaded DICOM."""

from fastapi import FastAPI

from medal.web import service_app
from services.ingest.api import router
from services.ingest.stow import router as stow_router


def create_app() -> FastAPI:
    return service_app(
        "ingest", "Takes DICOM in, strips patient identity, turns pixels into images.", [router, stow_router]
    )
