"""Preprocessing (PNG → tensors → PNG) and member weight files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from medal.model.fcn import SuggestiveFCN
from medal.model.preprocess import (
    IN_CHANNELS,
    ImageDecodeError,
    load_image,
    load_mask,
    mask_to_png,
    resize_classes,
)
from medal.model.weights import WeightsError, load_member, read_member, save_member
from proto.loop import TrainingSpec
from services.trainer.config import build_training_config


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_sixteen_bit_grey_is_standardised_and_resized() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4000, size=(30, 40)).astype(np.uint16)
    image = load_image(png(values), 16, offset=1024)
    assert image.shape == (IN_CHANNELS, 16, 16)
    assert image.dtype == torch.float32
    assert abs(float(image.mean())) < 0.1
    assert 0.3 < float(image.std()) < 1.1  # anti-aliased downsampling smooths some variance away


def test_offset_and_bit_depth_do_not_change_a_standardised_image() -> None:
    ramp = np.tile(np.arange(32, dtype=np.uint16) * 8, (32, 1))
    sixteen = load_image(png(ramp), 32, offset=500)
    eight = load_image(png(ramp.astype(np.uint8)), 32)
    assert torch.allclose(sixteen, eight, atol=1e-5)


def test_rgb_becomes_one_luminance_channel() -> None:
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[:, 10:] = (200, 100, 50)
    image = load_image(png(rgb), 20)
    assert image.shape == (1, 20, 20)
    assert float(image[0, 0, 15]) > 0 > float(image[0, 0, 2])


def test_constant_image_becomes_zeros() -> None:
    image = load_image(png(np.full((24, 24), 77, np.uint8)), 16)
    assert torch.count_nonzero(image) == 0


def test_mask_nearest_resize_keeps_class_values() -> None:
    mask = np.zeros((24, 24), np.uint8)
    mask[:12, :12] = 2
    mask[12:, 12:] = 1
    classes = load_mask(png(mask), 12)
    assert classes.dtype == torch.int64 and classes.shape == (12, 12)
    assert set(classes.unique().tolist()) == {0, 1, 2}
    assert int(classes[0, 0]) == 2 and int(classes[-1, -1]) == 1


def test_predicted_classes_go_back_to_the_image_size_and_to_png() -> None:
    pred = torch.zeros(16, 16, dtype=torch.long)
    pred[:8] = 3
    resized = resize_classes(pred, (30, 40))
    assert resized.shape == (30, 40) and resized.dtype == np.uint8
    assert set(np.unique(resized).tolist()) == {0, 3}
    decoded = load_mask(mask_to_png(resized), 30)
    assert int(decoded[0, 0]) == 3 and int(decoded[-1, 0]) == 0


def test_garbage_and_colour_masks_are_refused() -> None:
    with pytest.raises(ImageDecodeError):
        load_image(b"not a png", 16)
    with pytest.raises(ImageDecodeError):
        load_mask(png(np.zeros((8, 8, 3), np.uint8)), 8)


SPEC = TrainingSpec(num_classes=3, image_size=16, width=1 / 16, max_epochs=2, patience=1, batch_size=4)


def test_member_round_trips_through_bytes() -> None:
    model = SuggestiveFCN(IN_CHANNELS, 3, width=SPEC.width, fusion_stride=2).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01)
    data = save_member(model, SPEC)
    loaded = load_member(data)
    assert read_member(data).image_size == 16 and read_member(data).training == SPEC
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model(x)[0], loaded(x)[0], atol=1e-6)
    assert loaded.fusion_stride == 2 and not loaded.training


def test_foreign_bytes_are_not_a_member() -> None:
    with pytest.raises(WeightsError):
        load_member(b"\x00" * 64)
    buffer = io.BytesIO()
    torch.save({"state_dict": {}}, buffer)
    with pytest.raises(WeightsError):
        load_member(buffer.getvalue())


def test_training_config_follows_the_spec() -> None:
    config = build_training_config(SPEC)
    assert (config.width, config.max_epochs, config.patience, config.batch_size) == (1 / 16, 2, 1, 4)


def test_scales_fuse_at_half_resolution_on_a_cpu_and_full_on_a_gpu() -> None:
    assert build_training_config(SPEC).fusion_stride == 2
    assert build_training_config(SPEC, on_gpu=True).fusion_stride == 1
