"""Committee member weights as bytes: what the trainer stores in ``weights/…pt`` and query/inference load.

A member file is ``torch.save`` of a plain dict (loaded back with ``weights_only=True``, so a file
can never run code)::

    {"format": 1, "shape": {in_channels, num_classes, width, fusion_stride, dropout,
     blocks_per_stage, decoder_channels}, "image_size": int, "training": {TrainingSpec fields},
     "state_dict": {name: tensor}}

``shape`` is everything needed to rebuild the :class:`~medal.model.fcn.SuggestiveFCN`; ``image_size``
is the side the member's inputs are resized to (see medal.model.preprocess).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any

import torch

from medal.model.fcn import BottleneckBlock, SuggestiveFCN, encoder_channels
from proto.loop import TrainingSpec

__all__ = ["MemberFile", "MemberShape", "WeightsError", "load_member", "read_member", "save_member"]

FORMAT = 1


class WeightsError(ValueError):
    """The bytes are not a member file of a known format."""


@dataclass(frozen=True)
class MemberShape:
    """The constructor arguments of a member's SuggestiveFCN."""

    in_channels: int
    num_classes: int
    width: float
    fusion_stride: int
    dropout: float
    blocks_per_stage: tuple[int, ...]
    decoder_channels: int

    def build(self) -> SuggestiveFCN:
        return SuggestiveFCN(
            self.in_channels,
            self.num_classes,
            width=self.width,
            blocks_per_stage=self.blocks_per_stage,
            decoder_channels=self.decoder_channels,
            fusion_stride=self.fusion_stride,
            dropout=self.dropout,
        )


@dataclass(frozen=True)
class MemberFile:
    """A decoded member file (weights still a state dict)."""

    shape: MemberShape
    image_size: int
    training: TrainingSpec
    state_dict: dict[str, torch.Tensor]


def member_shape(model: SuggestiveFCN, width: float) -> MemberShape:
    """Read the constructor arguments back from a built model (``width`` is not recoverable from it)."""
    if encoder_channels(width)[-1] != model.descriptor_size:
        raise ValueError(f"width {width} does not match a model with {model.descriptor_size} descriptor channels")
    stem_conv = model.stem[0]
    assert isinstance(stem_conv, torch.nn.Conv2d)
    dropout = next(m for m in model.fusion.modules() if isinstance(m, torch.nn.Dropout2d))
    blocks = tuple(sum(isinstance(layer, BottleneckBlock) for layer in stage.modules()) for stage in model.stages)
    return MemberShape(
        in_channels=int(stem_conv.in_channels),
        num_classes=int(model.num_classes),
        width=float(width),
        fusion_stride=int(model.fusion_stride),
        dropout=float(dropout.p),
        blocks_per_stage=blocks,
        decoder_channels=int(model.classifier.in_channels),
    )


def save_member(model: SuggestiveFCN, training_spec: TrainingSpec) -> bytes:
    """Serialise a trained member (weights on the CPU) with its shape and the spec it was trained under."""
    shape = member_shape(model, training_spec.width)
    state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    payload: dict[str, Any] = {
        "format": FORMAT,
        "shape": {**asdict(shape), "blocks_per_stage": list(shape.blocks_per_stage)},
        "image_size": training_spec.image_size,
        "training": training_spec.model_dump(mode="json"),
        "state_dict": state,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def read_member(data: bytes) -> MemberFile:
    """Decode a member file without building the model. Raises :class:`WeightsError`."""
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise WeightsError(f"not a member weights file: {type(exc).__name__}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError("not a member weights file of format 1")
    try:
        raw = payload["shape"]
        shape = MemberShape(
            in_channels=int(raw["in_channels"]),
            num_classes=int(raw["num_classes"]),
            width=float(raw["width"]),
            fusion_stride=int(raw["fusion_stride"]),
            dropout=float(raw["dropout"]),
            blocks_per_stage=tuple(int(b) for b in raw["blocks_per_stage"]),
            decoder_channels=int(raw["decoder_channels"]),
        )
        training = TrainingSpec.model_validate(payload["training"])
        return MemberFile(shape, int(payload["image_size"]), training, dict(payload["state_dict"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"member weights file is incomplete: {exc}") from exc


def load_member(data: bytes, device: torch.device | str = "cpu") -> SuggestiveFCN:
    """Rebuild a member from its file, on ``device``, in eval mode. Raises :class:`WeightsError`."""
    member = read_member(data)
    model = member.shape.build()
    try:
        model.load_state_dict(member.state_dict)
    except RuntimeError as exc:
        raise WeightsError(f"weights do not fit the recorded shape: {exc}") from exc
    return model.to(device).eval()
