"""The task model of suggestive annotation: a residual-bottleneck FCN with multi-scale fusion.

Reference: Lin Yang, Yizhe Zhang, Jianxu Chen, Siyuan Zhang, Danny Z. Chen,
"Suggestive Annotation: A Deep Active Learning Framework for Biomedical Image Segmentation",
MICCAI 2017 (arXiv:1706.04737).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BottleneckBlock", "SuggestiveFCN", "encoder_channels"]

#: Channels at the end of each encoder stage at full width (width multiplier 1.0).
FULL_WIDTH_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 1024)


def encoder_channels(width: float) -> tuple[int, ...]:
    """Channels of each encoder stage for a width multiplier (at least 4 per stage)."""
    if width <= 0:
        raise ValueError(f"width multiplier must be positive, got {width}")
    return tuple(max(4, round(channels * width)) for channels in FULL_WIDTH_CHANNELS)


class BottleneckBlock(nn.Module):
    """Residual bottleneck block with batch normalisation (He et al. 2016, as used by Yang et al. 2017).

    1x1 conv (reduce to ``out_channels // 4``) -> 3x3 conv -> 1x1 conv (expand to ``out_channels``),
    each followed by batch norm, ReLU after the first two and after the residual sum. The shortcut is
    the identity when the channel count does not change, a 1x1 conv + batch norm otherwise, so every
    block ends with the same channel count on both branches.

    Args:
        in_channels: channels of the input, C_in.
        out_channels: channels of the output, C_out.

    Shapes:
        input: (B, C_in, H, W); output: (B, C_out, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid_channels = max(1, out_channels // 4)
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
        )
        self.spatial = nn.Sequential(
            nn.Conv2d(mid_channels, mid_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
        )
        self.expand = nn.Sequential(
            nn.Conv2d(mid_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        return F.relu(self.expand(self.spatial(self.reduce(x))) + self.shortcut(x))


class SuggestiveFCN(nn.Module):
    """FCN of suggestive annotation (Yang et al., MICCAI 2017), with an image descriptor output.

    Encoder: a 3x3 stem conv, then five stages of residual bottleneck blocks with 64, 128, 256, 512 and
    1024 channels at full width (scaled by ``width``); stages 2-5 start with a 2x2 max pool, so stage s
    works at 1/2^(s-1) of the input size. Decoder: each stage output is projected by a 1x1 conv and
    upsampled (bilinear) to the fusion size, the scales are concatenated and fused by a 3x3 conv then a
    1x1 conv into per-pixel class scores. With ``fusion_stride`` 1 the fusion runs at the input size (the
    paper); with 2 or 4 it runs at 1/2 or 1/4 of it and the class scores are upsampled to the input size,
    which removes most of the FLOPs (see docs/adr/0011-fusion-resolution.md).

    The image descriptor is the channel-wise mean of the last encoder feature map (1024 values at full
    width), which Yang et al. use for the cosine similarity between images.

    Args:
        in_channels: image channels, C_in (1 for grey, 3 for RGB).
        num_classes: output classes, N (background included).
        width: channel multiplier (1.0 = the paper's 64..1024 channels).
        blocks_per_stage: bottleneck blocks in each of the five stages.
        decoder_channels: channels of each scale after its 1x1 projection (default: first stage's channels).
        fusion_stride: 1, 2 or 4; the fusion runs at input size / fusion_stride.
        dropout: channel dropout before the final 1x1 conv (used by MC-dropout BALD at inference).

    Shapes:
        input: (B, C_in, H, W), H and W best multiples of 16.
        output: logits (B, N, H, W) and descriptor (B, D) with D = 1024 * width.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: float = 1.0,
        blocks_per_stage: Sequence[int] = (1, 1, 2, 2, 2),
        decoder_channels: int | None = None,
        fusion_stride: int = 1,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if len(blocks_per_stage) != len(FULL_WIDTH_CHANNELS) or min(blocks_per_stage) < 1:
            raise ValueError(f"blocks_per_stage needs 5 positive counts, got {tuple(blocks_per_stage)}")
        if fusion_stride not in (1, 2, 4):
            raise ValueError(f"fusion_stride must be 1, 2 or 4, got {fusion_stride}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        channels = encoder_channels(width)
        decoder_channels = decoder_channels or channels[0]
        self.num_classes = num_classes
        self.fusion_stride = fusion_stride
        self.descriptor_size = channels[-1]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        previous = channels[0]
        for index, (stage_channels, blocks) in enumerate(zip(channels, blocks_per_stage, strict=True)):
            layers: list[nn.Module] = [nn.MaxPool2d(2)] if index > 0 else []
            for _ in range(blocks):
                layers.append(BottleneckBlock(previous, stage_channels))
                previous = stage_channels
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.projections = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(stage_channels, decoder_channels, 1, bias=False),
                nn.BatchNorm2d(decoder_channels),
                nn.ReLU(inplace=True),
            )
            for stage_channels in channels
        )
        fused = decoder_channels * len(channels)
        self.fusion = nn.Sequential(
            nn.Conv2d(fused, decoder_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(decoder_channels),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )
        self.classifier = nn.Conv2d(decoder_channels, num_classes, 1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder feature maps: (B, C_in, H, W) -> five maps (B, C_s, H / 2^s, W / 2^s), s = 0..4."""
        features = []
        hidden = self.stem(x)
        for stage in self.stages:
            hidden = stage(hidden)
            features.append(hidden)
        return features

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C_in, H, W) -> (logits (B, N, H, W), descriptor (B, D))."""
        height, width = x.shape[-2:]
        features = self.encode(x)
        fusion_size = (max(1, height // self.fusion_stride), max(1, width // self.fusion_stride))
        scales = []
        for feature, projection in zip(features, self.projections, strict=True):
            projected = projection(feature)
            if projected.shape[-2:] != fusion_size:
                projected = F.interpolate(projected, size=fusion_size, mode="bilinear", align_corners=False)
            scales.append(projected)
        logits = self.classifier(self.fusion(torch.cat(scales, dim=1)))
        if logits.shape[-2:] != (height, width):
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        descriptor = features[-1].mean(dim=(2, 3))
        return logits, descriptor
