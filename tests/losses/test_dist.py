"""DIST against an independent numpy implementation of the paper."""

import numpy as np
import pytest
import tensorflow as tf
from references import (
    assert_round_trip,
    logits,
    np_softmax,
    numeric_gradient,
    student_gradient,
    values,
)

from kd_keras import losses


def np_pearson(u, v):
    """Pearson correlation of the rows of `u` and `v`."""
    u = u - u.mean(axis=-1, keepdims=True)
    v = v - v.mean(axis=-1, keepdims=True)
    return np.sum(u * v, axis=-1) / np.sqrt(
        np.sum(u * u, axis=-1) * np.sum(v * v, axis=-1)
    )


def np_dist_terms(t, s, temperature):
    """Huang et al., eqs. (7)-(9): (per-sample inter, batch intra), x T**2."""
    y_s, y_t = np_softmax(s, temperature), np_softmax(t, temperature)
    inter = 1 - np_pearson(y_s, y_t)
    intra = 1 - np.mean(np_pearson(y_s.T, y_t.T))
    return temperature**2 * inter, temperature**2 * intra


def np_dist(t, s, beta, gamma, temperature):
    """The loss of a batch, eq. (10)."""
    inter, intra = np_dist_terms(t, s, temperature)
    return beta * inter.mean() + gamma * intra


def test_hand_computed():
    # Two classes: a probability row [p, 1 - p] centred is
    # [p - 1/2, 1/2 - p], so every correlation is +1 or -1: +1 when both
    # rows lie on the same side of 1/2, or both columns move the same way.
    # Teacher first-class probabilities: (0.27, 0.73).
    t = [[0.0, 1.0], [1.0, 0.0]]
    # Student (0.73, 0.27): every sample and every class anti-correlated,
    # inter = intra = 2.
    s = [[1.0, 0.0], [0.0, 1.0]]
    got = values(losses.dist(t, s, beta=1.0, gamma=0.5))
    np.testing.assert_allclose(got, [3.0, 3.0], atol=1e-6)
    # Student (0.1, 0.3): sample 0 agrees, sample 1 does not (inter 0, 2);
    # it rises as the teacher's does (intra 0).
    s = [[0.0, np.log(9.0)], [0.0, np.log(7 / 3)]]
    got = values(losses.dist(t, s, beta=2.0, gamma=5.0, temperature=1.0))
    np.testing.assert_allclose(got, [0.0, 4.0], atol=1e-5)
    # Against itself every relation is a perfect correlation (up to the
    # 1e-8 the reference code adds to the denominator).
    got = values(losses.dist(t, t, temperature=3.0))
    np.testing.assert_allclose(got, [0.0, 0.0], atol=1e-4)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("beta,gamma", [(1.0, 1.0), (2.0, 0.0), (0.0, 3.0)])
def test_matches_numpy(beta, gamma, temperature):
    t, s = logits(0), logits(1)
    inter, intra = np_dist_terms(t, s, temperature)
    got = losses.dist(t, s, beta, gamma, temperature)
    np.testing.assert_allclose(
        values(got), beta * inter + gamma * intra, rtol=1e-4, atol=1e-5
    )
    loss = losses.DIST(beta, gamma, temperature)
    np.testing.assert_allclose(
        float(loss(t, s)),
        np_dist(t, s, beta, gamma, temperature),
        rtol=1e-4,
        atol=1e-5,
    )


def test_sample_weight_weighs_inter_and_scales_intra():
    t, s = logits(2), logits(3)
    weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0], dtype="float32")
    inter, intra = np_dist_terms(t, s, 2.0)
    expected = (np.sum(weights * inter) + intra * weights.sum()) / 5
    got = float(losses.DIST(temperature=2.0)(t, s, sample_weight=weights))
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    summed = losses.DIST(temperature=2.0, reduction="sum")
    np.testing.assert_allclose(
        float(summed(t, s)), inter.sum() + 5 * intra, rtol=1e-4
    )


def test_gradient_matches_finite_differences():
    t, s = logits(4, (6, 4)), logits(5, (6, 4))
    loss = losses.DIST(beta=1.0, gamma=2.0, temperature=2.0)
    got = student_gradient(lambda s: loss(t, s), s)

    def paper(s):
        return np_dist(t, s, 1.0, 2.0, 2.0)

    np.testing.assert_allclose(got, numeric_gradient(paper, s), atol=1e-5)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_one_sample_batch_has_finite_gradient(jit_compile):
    t, s = logits(6, (1, 4)), logits(7, (1, 4))
    inter, _ = np_dist_terms(t, s, 1.0)
    got = values(losses.dist(t, s))
    # Centred over a batch of one, every class is 0: correlation 0.
    np.testing.assert_allclose(got, inter + 1.0, rtol=1e-5)

    def gradient(gamma):
        return student_gradient(
            tf.function(jit_compile=jit_compile)(
                lambda s: losses.dist(t, s, gamma=gamma)
            ),
            s,
        )

    with_intra = gradient(1.0)
    assert np.all(np.isfinite(with_intra))
    np.testing.assert_allclose(with_intra, gradient(0.0), atol=1e-6)


def test_positions_count_as_samples():
    # (batch, positions, classes), as a segmentation map: the intra-class
    # relation runs over every position of the batch.
    t, s = logits(8, (2, 3, 5)), logits(9, (2, 3, 5))
    got = values(losses.dist(t, s))
    assert got.shape == (2, 3)
    flat = values(losses.dist(t.reshape(6, 5), s.reshape(6, 5)))
    np.testing.assert_allclose(got.reshape(6), flat, rtol=1e-6)
    np.testing.assert_allclose(
        got.mean(),
        np_dist(t.reshape(6, 5), s.reshape(6, 5), 1.0, 1.0, 1.0),
        rtol=1e-4,
    )


def test_compiled_step_follows_temperature():
    t, s = logits(10), logits(11)
    loss = losses.DIST()
    step = tf.function(lambda t, s: loss(t, s))
    step(t, s)
    loss.temperature = 4.0
    np.testing.assert_allclose(
        float(step(t, s)), np_dist(t, s, 1.0, 1.0, 4.0), rtol=1e-4
    )
    assert step.experimental_get_tracing_count() == 1


def test_declares_its_needs():
    loss = losses.DIST()
    assert loss.softmax_based and not loss.requires_labels


def test_round_trip():
    loss = losses.DIST(2.0, 0.5, 3.0, reduction="sum", name="my_dist")
    assert_round_trip(loss, logits(12), logits(13))


def test_docstring_example():
    loss = losses.DIST()
    teacher = [[2.0, 0.0, 1.0], [0.0, 1.0, 3.0]]
    assert round(float(loss(teacher, teacher)), 4) == 0.0
    student = [[4.0, 0.0, 2.0], [0.0, 2.0, 6.0]]
    assert round(float(loss(teacher, student)), 3) == 0.007


@pytest.mark.parametrize("argument", ["beta", "gamma"])
def test_bad_weights(argument):
    with pytest.raises(ValueError, match=f"{argument} must be >= 0"):
        losses.DIST(**{argument: -1.0})
    with pytest.raises(TypeError, match=f"{argument} must be a number"):
        losses.DIST(**{argument: None})


def test_bad_temperature():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        losses.DIST(temperature=0.0)
