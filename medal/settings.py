"""Every setting of medal, read once from `MEDAL_` environment variables.

Nothing below this module reads ``os.environ``: a process builds one :class:`Settings` in its
composition root (the CLI or an app factory) and hands it down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ServiceName = Literal["ingest", "annotation", "trainer", "query", "inference"]
SERVICE_NAMES: tuple[ServiceName, ...] = ("ingest", "annotation", "trainer", "query", "inference")


class Settings(BaseSettings):
    """Configuration of one medal process.

    Embedded mode (the default) keeps everything under ``data_dir``: a SQLite file, a directory of
    objects and an in-process bus. Setting ``database_url``, ``broker_url`` and ``s3_endpoint``
    switches each adapter to PostgreSQL, RabbitMQ and S3/MinIO.
    """

    model_config = SettingsConfigDict(env_prefix="MEDAL_", extra="ignore")

    data_dir: Path = Field(default=Path(".medal"), description="All embedded state lives here.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+asyncpg://user@host/db; default: SQLite in data_dir.",
    )
    broker_url: str | None = Field(
        default=None, description="AMQP URL of RabbitMQ, e.g. amqp://guest:guest@127.0.0.1:5672/%2F."
    )
    s3_endpoint: str | None = Field(default=None, description="host:port of MinIO/S3; default: a directory.")
    s3_access_key: str = "minioadmin"
    s3_secret_key: SecretStr = SecretStr("minioadmin")
    s3_bucket: str = "medal"
    s3_secure: bool = False
    s3_region: str | None = None

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Accepted API keys (X-API-Key or Bearer). Empty: every caller is the local user.",
    )
    deid_secret: SecretStr = Field(
        default=SecretStr("embedded-development-key-change-me"),
        description="Key of the keyed hashes that pseudonymise UIDs and ids. A deployment secret.",
    )

    bus_namespace: str = Field(
        default="",
        pattern=r"^[a-z0-9-]*$",
        description="Prefix of every exchange and queue (tests, tenants).",
    )
    bus_prefetch: int = Field(default=10, ge=1, le=1000)
    bus_delivery_limit: int = Field(
        default=14,
        ge=1,
        le=100,
        description="Tries of a message that fails for a transient reason before it is dead-lettered. With the "
        "default back-off (1 s, 2 s, 4 s … 256 s, then 300 s) the 14 tries span about 28 minutes, so an outage "
        "of a dependency that long loses nothing. Permanent failures (malformed body, unknown type, a permanent "
        "domain error) are dead-lettered at the first try.",
    )
    bus_retry_initial_seconds: float = Field(
        default=1.0, gt=0, le=3600, description="Back-off after the first failed try; it doubles after each one."
    )
    bus_retry_max_seconds: float = Field(
        default=300.0, gt=0, le=3600, description="Longest back-off between two tries (the doubling stops here)."
    )
    bus_retry_jitter: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="Each back-off is shortened at random by up to this fraction, so messages that failed "
        "together (an outage) do not all come back at once.",
    )
    bus_heartbeat_seconds: int = Field(default=30, ge=0, le=600)
    outbox_poll_seconds: float = Field(default=0.5, gt=0, le=60)

    trainer_lease_seconds: float = Field(
        default=60, gt=0, le=3600, description="A member job's lease; a worker silent this long loses its job."
    )
    trainer_heartbeat_seconds: float = Field(
        default=10, gt=0, le=600, description="How often a training worker renews its lease and writes progress."
    )
    trainer_threads: int | None = Field(
        default=None, ge=1, le=1024, description="CPU threads a trainer uses for torch; default: every CPU it may use."
    )

    inference_url: str | None = Field(
        default=None,
        description="Base URL of the inference service's process (annotation calls it for pre-annotation); "
        "default: the origin of the request (embedded mode, every service on one port).",
    )
    trainer_url: str | None = Field(
        default=None, description="Base URL of the trainer service's process; default: the request's origin."
    )

    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1)
    shutdown_grace_seconds: float = Field(
        default=25.0,
        gt=0,
        le=3600,
        description="`medal serve`: on SIGTERM, how long in-flight HTTP requests may take to finish (an upload, "
        "say); keep it a little under the pod's terminationGracePeriodSeconds.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    worker_heartbeat_file: Path | None = Field(
        default=None, description="A worker touches this file while its consume loop runs (liveness probe)."
    )

    @field_validator("bus_retry_max_seconds")
    @classmethod
    def _retry_delays_ordered(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("bus_retry_initial_seconds")
        if initial is not None and value < initial:
            raise ValueError("must not be below MEDAL_BUS_RETRY_INITIAL_SECONDS")
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @classmethod
    def from_environment(cls) -> Settings:
        """Environment variables, plus one file per secret in ``MEDAL_SECRETS_DIR`` when set.

        Files are named like the variables (``MEDAL_DEID_SECRET``, ``MEDAL_DATABASE_URL``…), as a
        Kubernetes Secret mounted as a volume provides them; environment variables win over files.
        """
        secrets_dir = os.environ.get("MEDAL_SECRETS_DIR")
        if secrets_dir:
            return cls(_secrets_dir=secrets_dir)  # BaseSettings init option
        return cls()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'medal.db').resolve()}"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def distributed(self) -> bool:
        return bool(self.broker_url)

    # --- Access: single sign-on, project keys, sign-in rate limits (medal/access) ---
    oidc_issuer: str | None = Field(
        default=None,
        description="Issuer URL of the OpenID Connect provider (e.g. https://idp/realms/hospital); its "
        "discovery document and JWKS are fetched from it. Unset: no single sign-on.",
    )
    oidc_audience: str | None = Field(
        default=None, description="The `aud` an access token must carry to be accepted (required with an issuer)."
    )
    oidc_discovery_url: str | None = Field(
        default=None, description="Default: <issuer>/.well-known/openid-configuration."
    )
    oidc_roles_claim: str = Field(
        default="realm_access.roles",
        pattern=r"^[A-Za-z0-9_:\-/]+(\.[A-Za-z0-9_:\-/]+)*$",
        description="Dotted path of the roles claim: a list of `medal:<project>:<role>` and `medal:platform-admin` "
        "names, or an object {project: role}.",
    )
    oidc_role_prefix: str = Field(
        default="medal", pattern=r"^[a-z0-9-]+$", description="Namespace of medal's role names in the claim."
    )
    oidc_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256", "PS256", "ES256"],
        description="Signature algorithms accepted (asymmetric only; never none or HS*).",
    )
    oidc_leeway_seconds: int = Field(default=30, ge=0, le=300, description="Clock skew tolerated on exp/nbf/iat.")
    oidc_jwks_cache_seconds: int = Field(default=3600, ge=10, le=86400, description="How long the JWKS is reused.")
    oidc_jwks_min_refresh_seconds: float = Field(
        default=30, ge=0, le=3600, description="An unknown `kid` refetches the JWKS at most this often."
    )
    oidc_http_timeout_seconds: float = Field(default=10, gt=0, le=120)
    oidc_client_id: str | None = Field(
        default=None, description="Public client the web UI and MONAI Label plugins sign in with (code + PKCE)."
    )
    auth_failures_burst: int = Field(
        default=10, ge=1, le=10000, description="Failed sign-ins a client address may make at once."
    )
    auth_failures_per_minute: float = Field(
        default=6, gt=0, le=10000, description="Failed sign-ins a client address regains per minute."
    )

    @field_validator("oidc_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            unsafe = [a for a in value if not isinstance(a, str) or a.lower() == "none" or a.upper().startswith("HS")]
            if unsafe or not value:
                raise ValueError("only asymmetric signature algorithms (RS*, PS*, ES*, EdDSA) may be accepted")
        return value

    @property
    def authentication_configured(self) -> bool:
        """An identity provider or API keys: callers must prove who they are."""
        return bool(self.api_keys or self.oidc_issuer)

    # PACS exchange (ingest): the C-STORE SCP, DICOMweb pulls and pushes (docs/pacs.md).
    dimse_enabled: bool = Field(
        default=False, description="Run ingest's C-STORE SCP in `medal up` and `medal serve ingest`."
    )
    dimse_ae_title: str = Field(default="MEDAL", pattern=r"^[A-Za-z0-9_.-]{1,16}$", description="medal's AE title.")
    dimse_host: str = Field(default="127.0.0.1", description="Address the C-STORE SCP listens on.")
    dimse_port: int = Field(default=11112, ge=1, le=65535)
    dimse_peers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Who may send studies: AET@ADDRESS=PROJECT entries, comma-separated; any other calling "
        "AE title or address is rejected.",
    )
    dicomweb_allowed_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="DICOMweb base URLs ingest may pull from or push to (prefix match, comma-separated; "
        "empty: none). They are server-side request targets, so a caller's URL must match one.",
    )
    dicomweb_timeout_seconds: float = Field(default=60, gt=0, le=3600, description="Per request to a remote PACS.")
    dicomweb_retries: int = Field(default=3, ge=1, le=10, description="Attempts per remote request.")
    pull_max_instances: int = Field(default=10000, ge=1, description="Instances one pull may fetch.")
    pull_max_bytes: int = Field(default=20 * 1024**3, ge=1, description="Bytes one pull may fetch.")
    push_max_instances: int = Field(default=10000, ge=1, description="Instances one push may send.")

    @field_validator("dimse_peers", "dicomweb_allowed_urls", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    # PACS and MONAI Label from annotation (docs/pacs.md, docs/monailabel.md).
    ingest_url: str | None = Field(
        default=None,
        description="Base URL of the ingest service's process: annotation calls it for original UIDs (SEG export "
        "to the clinical PACS) and MONAI Label's image upload; default: the request's origin (embedded mode only).",
    )
    stow_batch_objects: int = Field(
        default=8, ge=1, le=256, description="SEG objects per STOW-RS request of a SEG export to an archive."
    )
    monailabel_session_max_bytes: int = Field(
        default=256 * 1024**2, ge=1024, description="Largest image a MONAI Label /session upload may hold."
    )
    monailabel_session_max_seconds: int = Field(
        default=3600, ge=10, le=7 * 86400, description="Longest a MONAI Label session lives (its `expiry`, capped)."
    )
