"""The annotation service's app: projects and the images offered for labelling."""

from fastapi import FastAPI

from medal.web import service_app
from services.annotation.api import router
from services.annotation.api_labelling import router as labelling_router


def create_app() -> FastAPI:
    return service_app(
        "annotation", "Projects, images to label, masks, rounds and exports.", [router, labelling_router]
    )
