"""FCN output shapes and descriptor definition."""

from __future__ import annotations

import pytest
import torch

from medal.model.fcn import BottleneckBlock, SuggestiveFCN, encoder_channels


def test_full_width_descriptor_has_1024_values() -> None:
    assert encoder_channels(1.0)[-1] == 1024


@pytest.mark.parametrize("fusion_stride", [1, 2, 4])
@pytest.mark.parametrize(("in_channels", "num_classes"), [(1, 3), (3, 5)])
def test_output_shapes(fusion_stride: int, in_channels: int, num_classes: int) -> None:
    model = SuggestiveFCN(in_channels, num_classes, width=1 / 16, fusion_stride=fusion_stride).eval()
    logits, descriptor = model(torch.rand(2, in_channels, 48, 32))
    assert logits.shape == (2, num_classes, 48, 32)
    assert descriptor.shape == (2, encoder_channels(1 / 16)[-1]) == (2, 64)


def test_descriptor_is_channel_mean_of_last_encoder_map() -> None:
    model = SuggestiveFCN(1, 2, width=1 / 16).eval()
    images = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        _, descriptor = model(images)
        last = model.encode(images)[-1]
    assert last.shape == (3, 64, 2, 2)
    torch.testing.assert_close(descriptor, last.mean(dim=(2, 3)))


def test_bottleneck_keeps_size_and_sets_channels() -> None:
    block = BottleneckBlock(8, 16)
    assert block(torch.rand(2, 8, 10, 10)).shape == (2, 16, 10, 10)
    identity = BottleneckBlock(16, 16)
    assert isinstance(identity.shortcut, torch.nn.Identity)


def test_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="fusion_stride"):
        SuggestiveFCN(1, 3, fusion_stride=3)
    with pytest.raises(ValueError, match="width"):
        SuggestiveFCN(1, 3, width=0)
