"""`RKD` against an independent numpy implementation of the paper's and the
reference code's distance and angle terms."""

import numpy as np
import pytest
import tensorflow as tf
from references import (
    features,
    numeric_gradient,
    student_gradient,
    values,
)

from kd_keras import losses


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
