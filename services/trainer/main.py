"""The trainer service's app."""

from fastapi import FastAPI

from medal.web import service_app
from services.trainer.api import router


def create_app() -> FastAPI:
    return service_app("trainer", "Trains the committee of segmentation networks, one member per command.", [router])
