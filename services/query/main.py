"""The query service's app."""

from fastapi import FastAPI

from medal.web import service_app
from services.query.api import router


def create_app() -> FastAPI:
    return service_app("query", "Scores the unlabelled pool and selects what to label next.", [router])
