"""The annotation service's app: projects and the images offered for labelling; access control's REST."""

from fastapi import FastAPI

from medal.access.api import access_router, sign_in_router
from medal.web import service_app
from services.annotation.api import router
from services.annotation.api_labelling import router as labelling_router
from services.annotation.api_masks import router as masks_router
from services.annotation.api_viewer import router as viewer_router
from services.annotation.monailabel_api import router as monailabel_router
from services.annotation.monailabel_auth import router as monailabel_auth_router
from services.annotation.monailabel_routes import router as monailabel_tasks_router
from services.annotation.ownership import project_exists
from services.annotation.stow_api import router as stow_router
from services.annotation.web_ui import WebUi


def create_app() -> FastAPI:
    app = service_app(
        "annotation",
        "Projects, images to label, masks, rounds and exports; who may do what (keys, members, the audit trail); "
        "the web UI; a MONAI Label compatible API.",
        [
            access_router(project_exists=project_exists),
            router,
            labelling_router,
            masks_router,
            viewer_router,
            stow_router,
            monailabel_router,
            monailabel_tasks_router,
        ],
    )
    app.include_router(sign_in_router())  # unguarded, as the health routes are: how to sign in
    app.include_router(monailabel_auth_router)  # MONAI Label asks these before it has a token
    app.mount("/ui", WebUi(), name="ui")
    return app
