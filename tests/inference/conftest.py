"""Platforms of the inference service for its tests: on SQLite, and on SQLite and PostgreSQL (``any_platform``)."""

from tests.committee_helpers import service_platform_fixtures

platform, database_url, any_platform = service_platform_fixtures("inference")
