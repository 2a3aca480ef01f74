"""What every loss is built on (`kd_keras.losses.base`): the configs they
gather, the layer names of the feature losses, float32 computation,
serialization."""

import keras
import numpy as np
import pytest
from references import (
    assert_round_trip,
    features,
    values,
)

from kd_keras import losses


@pytest.mark.parametrize(
    "loss_class", [losses.FitNet, losses.AttentionTransfer, losses.RKD]
)
def test_bad_layer_names(loss_class):
    with pytest.raises(TypeError, match="teacher_layer must be a layer name"):
        loss_class(teacher_layer=3, student_layer="s")
    with pytest.raises(TypeError, match="student_layer must be a layer name"):
        loss_class(teacher_layer="t", student_layer=["s"])


@pytest.mark.parametrize(
    "fn", [losses.fitnet_hint, losses.attention_transfer, losses.rkd]
)
def test_float16_features_are_computed_in_float32(fn):
    t = features(25, (3, 4, 4, 2)).astype("float16")
    s = features(26, (3, 4, 4, 2)).astype("float16")
    got = fn(t, s)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    expected = fn(t.astype("float32"), s.astype("float32"))
    np.testing.assert_allclose(values(got), values(expected), rtol=1e-6)


@pytest.mark.parametrize(
    "loss,shapes",
    [
        (
            losses.FitNet("t_conv", "s_conv", adapter=True, name="hint"),
            ((3, 4, 4, 2), (3, 4, 4, 2)),
        ),
        (
            losses.AttentionTransfer(
                "t_block", "s_block", p=1.0, reduction="sum"
            ),
            ((3, 4, 4, 6), (3, 4, 4, 2)),
        ),
        (
            losses.RKD("t_pool", "s_pool", distance_weight=2.0),
            ((3, 8), (3, 5)),
        ),
        (losses.RKD(), ((3, 8), (3, 5))),
    ],
)
def test_serialization_round_trip(loss, shapes):
    # The configs compared include both layer names.
    assert_round_trip(loss, features(27, shapes[0]), features(28, shapes[1]))
    assert not loss.softmax_based and not loss.requires_labels


def test_exported():
    for name in (
        "FitNet",
        "AttentionTransfer",
        "RKD",
        "fitnet_hint",
        "attention_map",
        "attention_transfer",
        "rkd",
        "rkd_distance",
        "rkd_angle",
    ):
        assert name in losses.__all__
        assert getattr(losses, name)


def test_docstring_examples():
    loss = losses.FitNet("teacher_conv", "student_conv")
    assert float(loss([[1.0, 2.0]], [[3.0, 2.0]])) == 2.0
    assert loss.make_adapter((8, 8, 64), (8, 8, 16)).name == "fitnet_adapter"
    loss = losses.AttentionTransfer("block2", "block2", p=1)
    value = float(loss([[[[3.0], [4.0]]]], [[[[4.0], [3.0]]]]))
    assert round(value, 6) == 0.04
    loss = losses.RKD(distance_weight=1.0, angle_weight=0.0)
    value = float(loss([[0.0], [1.0], [3.0]], [[0.0], [1.0], [2.0]]))
    assert round(value, 6) == round(4 * 0.5 * 0.25**2 / 9, 6)


def test_config_gathers_the_config_names_of_the_bases():
    class Scaled(losses.TemperatureLoss):
        config_names = ("scale",)

        def __init__(self, scale=2.0, temperature=3.0, name="scaled"):
            super().__init__(losses.kd, temperature, "sum", name, None)
            self.scale = scale

    config = Scaled().get_config()
    assert config["temperature"] == 3.0 and config["scale"] == 2.0
    assert config["name"] == "scaled" and config["reduction"] == "sum"
    assert set(losses.RKD("a", "b").get_config()) >= {
        "teacher_layer",
        "student_layer",
        "distance_weight",
        "angle_weight",
    }
