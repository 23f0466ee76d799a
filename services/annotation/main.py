"""The annotation service's app: projects and the images offered for labelling."""

from fastapi import FastAPI

from medal.web import service_app
from services.annotation.api import router
from services.annotation.api_labelling import router as labelling_router
from services.annotation.api_viewer import router as viewer_router
from services.annotation.monailabel_api import router as monailabel_router
from services.annotation.monailabel_auth import router as monailabel_auth_router
from services.annotation.monailabel_routes import router as monailabel_tasks_router
from services.annotation.stow_api import router as stow_router
from services.annotation.web_ui import WebUi


def create_app() -> FastAPI:
    app = service_app(
        "annotation",
        "Projects, images to label, masks, rounds and exports; the web UI; a MONAI Label compatible API.",
        [router, labelling_router, viewer_router, stow_router, monailabel_router, monailabel_tasks_router],
    )
    app.include_router(monailabel_auth_router)  # MONAI Label asks these before it has a token
    app.mount("/ui", WebUi(), name="ui")
    return app
