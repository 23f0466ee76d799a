"""The ingest service's records, which are also its API's request and response models (one each)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from proto.types import Id, ProjectName
from services.ingest.deid import DatePolicy, DeidOptions
from services.ingest.raster import Window

Outcome = Literal["accepted", "quarantined", "duplicate", "refused"]


class InstanceResult(BaseModel):
    """What became of one instance of a submission."""

    index: int = Field(description="Position of the file in the submission (file names are never echoed).")
    outcome: Outcome
    code: str | None = Field(default=None, description="Machine code of a refusal, e.g. not_dicom, truncated.")
    reason: str | None = Field(default=None, description="Why it was refused or quarantined.")
    instance_id: Id | None = None
    image_ids: list[Id] = Field(default_factory=list)
    # The de-identified SOP Instance and Class UIDs, for STOW-RS answers only (not in the JSON API).
    sop_uid: str | None = Field(default=None, exclude=True)
    sop_class_uid: str | None = Field(default=None, exclude=True)


class Job(BaseModel):
    """One submission (an upload, a zip, a STOW-RS request) and its counts so far."""

    id: Id
    status: Literal["running", "completed"]
    source: str = Field(description="upload, zip, stow, dimse or pull")
    submitted_by: str | None = Field(
        description="The authenticated caller who submitted it (null for jobs recorded before callers were)."
    )
    total: int
    accepted: int
    duplicates: int
    quarantined: int
    refused: int
    created_at: datetime
    completed_at: datetime | None


class JobResponse(BaseModel):
    project: ProjectName
    job: Job
    results: list[InstanceResult]

    def count(self, outcome: Outcome) -> int:
        return sum(result.outcome == outcome for result in self.results)


class UploadSummary(BaseModel):
    accepted: int = Field(description="Stored and offered for annotation, or stored in quarantine (see job).")
    duplicate: int
    refused: int


class UploadResponse(JobResponse):
    summary: UploadSummary

    @classmethod
    def of(cls, report: JobResponse) -> UploadResponse:
        summary = UploadSummary(
            accepted=report.count("accepted") + report.count("quarantined"),
            duplicate=report.count("duplicate"),
            refused=report.count("refused"),
        )
        return cls(project=report.project, job=report.job, results=report.results, summary=summary)


class Study(BaseModel):
    id: Id
    modalities: list[str]
    series: int
    instances: int
    images: int


class StudyList(BaseModel):
    project: ProjectName
    studies: list[Study]


class IngestSettings(BaseModel):
    """A project's ingest options: the date option of de-identification and the display window preset."""

    date_policy: DatePolicy = Field(
        default="shift",
        description="shift: Retain Longitudinal Temporal Information with Modified Dates (keyed per-patient "
        "offset); remove: dates emptied or removed as the Basic Profile says.",
    )
    window_center: float | None = Field(default=None, description="Display preset; both or neither.")
    window_width: float | None = Field(default=None, gt=0)
    keep_original_uids: bool = Field(
        default=False,
        description="Keep the original-to-pseudonym UID mapping inside ingest so that SEG objects can reference "
        "the clinical PACS's instances (project admins only; docs/adr/0034). Off: nothing identifying is kept.",
    )

    @property
    def preset(self) -> Window | None:
        if self.window_center is None or self.window_width is None:
            return None
        return Window(self.window_center, self.window_width)

    @property
    def deid_options(self) -> DeidOptions:
        return DeidOptions(dates=self.date_policy)


class QuarantinedInstance(BaseModel):
    instance_id: Id
    study_id: Id
    series_id: Id
    modality: str
    reason: str | None
    images: int


class QuarantineList(BaseModel):
    project: ProjectName
    instances: list[QuarantinedInstance]


class ReleaseResponse(BaseModel):
    instance_id: Id
    released_images: int = Field(description="Images that became available now (0: it was released already).")
    released_by: str | None = Field(description="The caller who released it (null: it was never quarantined).")
