"""`FitNet` against an independent numpy implementation of the hint loss,
its adapters and their errors."""

import keras
import numpy as np
import pytest
from references import (
    features,
    np_fitnet,
    values,
)

from kd_keras import losses


def conv_adapter_check(adapter, channels):
    assert isinstance(adapter, keras.layers.Conv2D)
    assert adapter.filters == channels
    assert tuple(adapter.kernel_size) == (1, 1)


def assert_fitnet_adapter_error(mode, student_shape, match, *parts):
    """`make_adapter` from teacher features `(8, 8, 16)` must raise a
    `ValueError` naming both layers, both shapes and `parts`."""
    loss = losses.FitNet("t_conv", "s_conv", adapter=mode)
    with pytest.raises(ValueError, match=match) as error:
        loss.make_adapter((8, 8, 16), student_shape)
    message = str(error.value)
    for part in ("'t_conv'", "'s_conv'", "(None, 8, 8, 16)", *parts):
        assert part in message


def test_fitnet_hand_computed():
    teacher, student = [[1.0, 2.0], [0.0, 0.0]], [[3.0, 2.0], [1.0, 1.0]]
    got = losses.fitnet_hint(teacher, student)
    np.testing.assert_allclose(values(got), [2.0, 1.0])
    assert float(losses.FitNet("t", "s")(teacher, student)) == 1.5


@pytest.mark.parametrize("shape", [(3, 5), (3, 4, 4, 6)])
def test_fitnet_matches_numpy(shape):
    t, s = features(0, shape), features(1, shape)
    expected = np_fitnet(t, s)
    np.testing.assert_allclose(
        values(losses.fitnet_hint(t, s)), expected, rtol=1e-5
    )
    # With the default reduction: the mean over every element, as
    # RepDistiller's HintLoss (nn.MSELoss()).
    loss = losses.FitNet("t", "s")
    np.testing.assert_allclose(
        float(loss(t, s)), ((s - t) ** 2).mean(), rtol=1e-5
    )


@pytest.mark.parametrize(
    "mode,teacher_shape,student_shape,kind",
    [
        ("auto", (8, 8, 16), (8, 8, 16), None),
        ("auto", (8, 8, 16), (8, 8, 4), "conv"),
        ("auto", (10,), (10,), None),
        ("auto", (10,), (6,), "dense"),
        (True, (8, 8, 16), (8, 8, 16), "conv"),
        (True, (8, 8, 16), (8, 8, 4), "conv"),
        (True, (10,), (10,), "dense"),
        (True, (10,), (6,), "dense"),
        (False, (8, 8, 16), (8, 8, 16), None),
        (False, (10,), (10,), None),
        ("auto", (None, None, 16), (None, None, 4), "conv"),
    ],
)
def test_fitnet_adapters(mode, teacher_shape, student_shape, kind):
    loss = losses.FitNet("t_conv", "s_conv", adapter=mode, name="hint")
    adapter = loss.make_adapter(teacher_shape, student_shape)
    if kind is None:
        assert adapter is None
        return
    assert adapter.name == "hint_adapter"
    assert adapter.built
    if kind == "conv":
        conv_adapter_check(adapter, teacher_shape[-1])
        student = features(2, (2, 8, 8, student_shape[-1]))
        teacher = features(3, (2, 8, 8, teacher_shape[-1]))
    else:
        assert isinstance(adapter, keras.layers.Dense)
        assert adapter.units == teacher_shape[-1]
        student = features(2, (2, student_shape[-1]))
        teacher = features(3, (2, teacher_shape[-1]))
    adapted = adapter(student)
    assert tuple(adapted.shape) == teacher.shape
    np.testing.assert_allclose(
        float(loss(teacher, adapted)),
        np_fitnet(teacher, values(adapted)).mean(),
        rtol=1e-5,
    )


def test_fitnet_adapter_false_with_different_channels():
    assert_fitnet_adapter_error(
        False, (8, 8, 4), "adapter=False", "(None, 8, 8, 4)"
    )


@pytest.mark.parametrize("mode", ["auto", True, False])
def test_fitnet_different_spatial_sizes(mode):
    assert_fitnet_adapter_error(
        mode,
        (16, 16, 16),
        "spatial sizes differ",
        "(None, 16, 16",
        "same height and width",
    )


def test_fitnet_different_ranks_and_outputs():
    loss = losses.FitNet(None, "s_dense")
    with pytest.raises(ValueError, match="same rank") as error:
        loss.make_adapter((8, 8, 16), (16,))
    assert "the teacher's output" in str(error.value)
    assert "'s_dense'" in str(error.value)


def test_fitnet_call_needs_adapted_features():
    loss = losses.FitNet("t_dense", "s_dense")
    with pytest.raises(ValueError, match="adapter") as error:
        loss(features(0, (2, 4)), features(1, (2, 3)))
    assert "'t_dense'" in str(error.value)
    with pytest.raises(ValueError, match="student_features.shape=\\(2, 3\\)"):
        losses.fitnet_hint(features(0, (2, 4)), features(1, (2, 3)))


@pytest.mark.parametrize("bad", ["yes", 1, None, "Auto"])
def test_fitnet_bad_adapter(bad):
    with pytest.raises(ValueError, match="adapter must be 'auto', True or"):
        losses.FitNet("t", "s", adapter=bad)


def test_round_trip_keeps_adapter_mode():
    loss = losses.FitNet("t", "s", adapter=False)
    restored = losses.FitNet.from_config(loss.get_config())
    assert restored.adapter is False
    assert restored.make_adapter((4,), (4,)) is None
