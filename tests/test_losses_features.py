"""Feature losses against independent numpy implementations of the papers'
and reference codes' formulas, their adapters, errors and serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_losses import (
    assert_round_trip,
    numeric_gradient,
    student_gradient,
    values,
)

from kd_keras import losses


def features(seed, shape):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape).astype("float32")


# Independent numpy implementations, in float64.


def np_fitnet(t, s):
    t, s = np.float64(t), np.float64(s)
    return ((s - t) ** 2).reshape(len(t), -1).mean(axis=1)


def np_attention(x, p):
    """The paper's F_sum^p (a sum over channels), L2-normalised."""
    q = (np.abs(np.float64(x)) ** p).sum(axis=-1).reshape(len(x), -1)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def np_at(t, s, p):
    return ((np_attention(s, p) - np_attention(t, p)) ** 2).mean(axis=1)


def np_smooth_l1(x):
    return np.where(np.abs(x) < 1, 0.5 * x**2, np.abs(x) - 0.5)


def np_distances(e):
    e = np.float64(e).reshape(len(e), -1)
    n = len(e)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            d[i, j] = np.linalg.norm(e[i] - e[j])
    return d / d[d > 0].mean()


def np_cosines(e):
    e = np.float64(e).reshape(len(e), -1)
    n = len(e)
    cos = np.zeros((n, n, n))
    for a in range(n):
        for b in range(n):
            for c in range(n):
                u, v = e[b] - e[a], e[c] - e[a]
                nu, nv = np.linalg.norm(u), np.linalg.norm(v)
                if nu > 0 and nv > 0:
                    cos[a, b, c] = u @ v / (nu * nv)
    return cos


def np_rkd_distance_rows(t, s):
    return np_smooth_l1(np_distances(s) - np_distances(t)).mean(axis=1)


def np_rkd_angle_rows(t, s):
    return np_smooth_l1(np_cosines(s) - np_cosines(t)).mean(axis=(1, 2))


def np_rkd_reference(t, s, w_d=25.0, w_a=50.0):
    """The reference's value: smooth_l1(reduction="mean") over all entries."""
    loss_d = np_smooth_l1(np_distances(s) - np_distances(t)).mean()
    loss_a = np_smooth_l1(np_cosines(s) - np_cosines(t)).mean()
    return w_d * loss_d + w_a * loss_a


# FitNet


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


def conv_adapter_check(adapter, channels):
    assert isinstance(adapter, keras.layers.Conv2D)
    assert adapter.filters == channels
    assert tuple(adapter.kernel_size) == (1, 1)


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


def assert_fitnet_adapter_error(mode, student_shape, match, *parts):
    """`make_adapter` from teacher features `(8, 8, 16)` must raise a
    `ValueError` naming both layers, both shapes and `parts`."""
    loss = losses.FitNet("t_conv", "s_conv", adapter=mode)
    with pytest.raises(ValueError, match=match) as error:
        loss.make_adapter((8, 8, 16), student_shape)
    message = str(error.value)
    for part in ("'t_conv'", "'s_conv'", "(None, 8, 8, 16)", *parts):
        assert part in message


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


# Attention transfer


def test_attention_transfer_hand_computed():
    # p=1, one channel, 1x2 positions: maps [3, 4] / 5 and [4, 3] / 5.
    got = losses.attention_transfer([[[[3.0], [4.0]]]], [[[[4.0], [3.0]]]], 1)
    np.testing.assert_allclose(values(got), [0.04], rtol=1e-5)
    # p=2: the teacher's map [1, 1] / sqrt(2); the student's two channels
    # give mean squares [1, 0]. (1 - 1/sqrt(2))**2 + 1/2 = 2 - sqrt(2),
    # averaged over two positions.
    teacher = [[[[1.0], [1.0]]]]
    student = [[[[1.0, -1.0], [0.0, 0.0]]]]
    got = losses.attention_transfer(teacher, student, 2)
    np.testing.assert_allclose(values(got), [1 - 1 / np.sqrt(2)], rtol=1e-5)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_attention_transfer_matches_numpy(p):
    t, s = features(4, (3, 5, 4, 6)), features(5, (3, 5, 4, 2))
    expected = np_at(t, s, p)
    np.testing.assert_allclose(
        values(losses.attention_transfer(t, s, p)), expected, rtol=1e-4
    )
    loss = losses.AttentionTransfer("t", "s", p=p)
    np.testing.assert_allclose(float(loss(t, s)), expected.mean(), rtol=1e-4)


def test_attention_map_is_normalised_and_zero_safe():
    x = features(6, (2, 3, 3, 4))
    x[1] = 0.0
    maps = values(losses.attention_map(x, p=2))
    assert maps.shape == (2, 9)
    np.testing.assert_allclose(np.linalg.norm(maps[0]), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(maps[1], 0.0)
    # A dead student layer: zero features give a finite gradient.
    gradient = student_gradient(
        lambda s: losses.attention_transfer(x, s, 1),
        np.zeros((2, 3, 3, 4), "float32"),
    )
    assert np.isfinite(gradient).all()


def test_attention_transfer_gradient():
    t, s = features(7, (2, 2, 3, 3)), features(8, (2, 2, 3, 2))
    got = student_gradient(lambda s: losses.attention_transfer(t, s, 2), s)
    expected = numeric_gradient(lambda x: np_at(t, x, 2).sum(), s)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_attention_transfer_errors():
    loss = losses.AttentionTransfer("t_block", "s_block")
    with pytest.raises(ValueError, match="spatial sizes differ") as error:
        loss.make_adapter((8, 8, 16), (4, 4, 16))
    assert "'t_block'" in str(error.value)
    assert "(None, 4, 4, 16)" in str(error.value)
    with pytest.raises(ValueError, match="spatial sizes differ"):
        loss(features(0, (2, 4, 4, 3)), features(1, (2, 2, 2, 3)))
    with pytest.raises(ValueError, match="image features") as error:
        loss(features(0, (2, 4)), features(1, (2, 4)))
    assert "(None, 4)" in str(error.value)
    with pytest.raises(ValueError, match="image features"):
        loss.make_adapter((16,), (16,))
    # Different channels need no adapter.
    assert loss.make_adapter((8, 8, 16), (8, 8, 4)) is None
    with pytest.raises(ValueError, match="attention_map"):
        losses.attention_transfer(features(0, (2, 4)), features(1, (2, 4)))


@pytest.mark.parametrize("bad", [0.5, 0, -2.0])
def test_attention_transfer_bad_p(bad):
    with pytest.raises(ValueError, match="p must be >= 1. Received: p="):
        losses.AttentionTransfer("t", "s", p=bad)


def test_attention_transfer_p_type():
    with pytest.raises(TypeError, match="p must be a number"):
        losses.attention_transfer(
            features(0, (1, 2, 2, 1)), features(1, (1, 2, 2, 1)), p="2"
        )


# RKD


def test_rkd_distance_hand_computed():
    # Teacher distances 1, 3, 2 (mean 2), student 1, 2, 1 (mean 4/3):
    # normalised [0.5, 1.5, 1] and [0.75, 1.5, 0.75]; the pairs (0, 1) and
    # (1, 2) are off by 0.25, smooth L1 0.03125, counted in both rows.
    teacher = [[0.0], [1.0], [3.0]]
    student = [[0.0], [1.0], [2.0]]
    got = losses.rkd_distance(teacher, student)
    np.testing.assert_allclose(
        values(got), [0.03125 / 3, 0.0625 / 3, 0.03125 / 3], rtol=1e-5
    )
    loss = losses.RKD(distance_weight=1.0, angle_weight=0.0)
    np.testing.assert_allclose(float(loss(teacher, student)), 1 / 72, 1e-5)


def test_rkd_angle_hand_computed():
    # Teacher: a right triangle; angles 90, 45, 45 degrees. Student: three
    # points on a line; angles 0, 180, 0 degrees. Each vertex has two
    # ordered pairs (b, c) of distinct other points, nine entries in all.
    teacher = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    student = [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]
    gaps = np.array([1.0, -1 - 1 / np.sqrt(2), 1 - 1 / np.sqrt(2)])
    expected = 2 * np_smooth_l1(gaps) / 9
    got = losses.rkd_angle(teacher, student)
    np.testing.assert_allclose(values(got), expected, rtol=1e-5)


@pytest.mark.parametrize("shape", [(6, 5), (5, 2, 2, 3)])
def test_rkd_terms_match_numpy(shape):
    # Scaled so that some normalised gaps pass the smooth L1's kink at 1.
    t = features(9, shape)
    s = features(10, (shape[0], 7)) * np.array([5, 1, 1, 1, 1, 1, 0.1])
    np.testing.assert_allclose(
        values(losses.rkd_distance(t, s)),
        np_rkd_distance_rows(t, s),
        rtol=1e-4,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        values(losses.rkd_angle(t, s)),
        np_rkd_angle_rows(t, s),
        rtol=1e-4,
        atol=1e-6,
    )
    gaps = np.abs(np_distances(s) - np_distances(t))
    assert gaps.max() > 1 > gaps[gaps > 0].min()


@pytest.mark.parametrize("w_d,w_a", [(25.0, 50.0), (1.0, 0.0), (0.0, 2.0)])
def test_rkd_default_reduction_is_the_reference_value(w_d, w_a):
    t, s = features(11, (6, 4)), features(12, (6, 3))
    loss = losses.RKD("t", "s", distance_weight=w_d, angle_weight=w_a)
    np.testing.assert_allclose(
        float(loss(t, s)), np_rkd_reference(t, s, w_d, w_a), rtol=1e-4
    )
    np.testing.assert_allclose(
        values(losses.rkd(t, s, w_d, w_a)),
        w_d * np_rkd_distance_rows(t, s) + w_a * np_rkd_angle_rows(t, s),
        rtol=1e-4,
    )


def test_rkd_defaults_are_the_reference_weights():
    loss = losses.RKD()
    assert (loss.distance_weight, loss.angle_weight) == (25.0, 50.0)
    assert loss.teacher_layer is None and loss.student_layer is None
    assert not loss.softmax_based


def test_rkd_sample_weight_weighs_rows():
    t, s = features(13, (5, 4)), features(14, (5, 4))
    weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0], "float32")
    rows = 25 * np_rkd_distance_rows(t, s) + 50 * np_rkd_angle_rows(t, s)
    np.testing.assert_allclose(
        float(losses.RKD()(t, s, sample_weight=weights)),
        np.sum(rows * weights) / 5,
        rtol=1e-4,
    )
    # A pair (i, j) counts with (w_i + w_j) / 2.
    d = np_smooth_l1(np_distances(s) - np_distances(t))
    pair_weights = (weights[:, None] + weights[None, :]) / 2
    loss = losses.RKD(distance_weight=1.0, angle_weight=0.0)
    np.testing.assert_allclose(
        float(loss(t, s, sample_weight=weights)),
        np.sum(d * pair_weights) / 25,
        rtol=1e-4,
    )


@pytest.mark.parametrize("scale", [0.01, 3.0, 100.0])
def test_rkd_is_scale_invariant(scale):
    t, s = features(15, (6, 4)), features(16, (6, 5))
    for fn in (losses.rkd_distance, losses.rkd_angle):
        reference = values(fn(t, s))
        np.testing.assert_allclose(
            values(fn(scale * t, s)), reference, rtol=1e-4, atol=1e-7
        )
        np.testing.assert_allclose(
            values(fn(t, scale * s)), reference, rtol=1e-4, atol=1e-7
        )


def test_rkd_gradient():
    t, s = features(17, (4, 3)), features(18, (4, 2))
    got = student_gradient(lambda s: losses.rkd(t, s, 25.0, 50.0), s)
    expected = numeric_gradient(
        lambda x: 4 * np_rkd_reference(t, x, 25.0, 50.0), s
    )
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_rkd_batch_of_one_and_duplicates():
    loss = losses.RKD()
    assert float(loss(features(19, (1, 4)), features(20, (1, 3)))) == 0.0
    # Equal samples on both sides: zero distance and angle, finite gradient.
    t = np.repeat(features(21, (1, 4)), 3, axis=0)
    student = tf.Variable(np.repeat(features(22, (1, 3)), 3, axis=0))
    with tf.GradientTape() as tape:
        value = loss(t, student)
    assert float(value) == pytest.approx(0.0, abs=1e-5)
    assert np.isfinite(tape.gradient(value, student).numpy()).all()


def test_rkd_unknown_batch_size_compiled():
    loss = losses.RKD()

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 4]),
            tf.TensorSpec([None, 3]),
        ],
        jit_compile=True,
    )
    def compiled(t, s):
        return loss(t, s)

    t, s = features(23, (5, 4)), features(24, (5, 3))
    np.testing.assert_allclose(
        float(compiled(t, s)), np_rkd_reference(t, s), rtol=1e-4
    )
    assert float(compiled(t[:1], s[:1])) == 0.0
    # The weights are variables: a change reaches the compiled function.
    loss.angle_weight = 0.0
    np.testing.assert_allclose(
        float(compiled(t, s)), np_rkd_reference(t, s, w_a=0.0), rtol=1e-4
    )


@pytest.mark.parametrize("argument", ["distance_weight", "angle_weight"])
def test_rkd_bad_weights(argument):
    with pytest.raises(ValueError, match=f"{argument} must be >= 0"):
        losses.RKD(**{argument: -1.0})
    with pytest.raises(TypeError, match=f"{argument} must be a number"):
        losses.RKD(**{argument: "25"})


# Shared


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


def test_round_trip_keeps_adapter_mode():
    loss = losses.FitNet("t", "s", adapter=False)
    restored = losses.FitNet.from_config(loss.get_config())
    assert restored.adapter is False
    assert restored.make_adapter((4,), (4,)) is None


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
