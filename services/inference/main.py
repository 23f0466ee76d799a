"""The inference service's app."""

from fastapi import FastAPI

from medal.web import service_app
from services.inference.api import router


def create_app() -> FastAPI:
    return service_app("inference", "Predicts masks: pre-annotation and auto-labelling.", [router])
