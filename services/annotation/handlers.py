"""Bus messages the annotation service consumes: check the type, call one use case."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from medal.bus import Handler, PermanentFailure
from medal.platform import Platform
from proto import (
    BatchSelected,
    Envelope,
    ImageIngested,
    IngestJobCompleted,
    Message,
    ModelPromoted,
    ModelTrained,
    PredictionsStored,
)
from services.annotation import loop_events, service
from services.annotation.projects import ProjectNotFound

M = TypeVar("M", bound=Message)


def _typed(
    platform: Platform, kind: type[M], use_case: Callable[[Platform, Envelope, M], Coroutine[Any, Any, object]]
) -> Handler:
    async def handle(envelope: Envelope, message: Message) -> None:
        if not isinstance(message, kind):
            raise PermanentFailure(f"expected {kind.TYPE}")
        try:
            await use_case(platform, envelope, message)
        except ProjectNotFound:
            raise PermanentFailure(f"no project named {getattr(message, 'project', '?')}") from None

    return handle


def handlers(platform: Platform) -> Mapping[str, Handler]:
    return {
        ImageIngested.TYPE: _typed(platform, ImageIngested, service.record_ingested_image),
        IngestJobCompleted.TYPE: _typed(platform, IngestJobCompleted, service.record_ingest_job),
        ModelTrained.TYPE: _typed(platform, ModelTrained, loop_events.on_model_trained),
        ModelPromoted.TYPE: _typed(platform, ModelPromoted, loop_events.on_model_promoted),
        BatchSelected.TYPE: _typed(platform, BatchSelected, loop_events.on_batch_selected),
        PredictionsStored.TYPE: _typed(platform, PredictionsStored, loop_events.on_predictions_stored),
    }
