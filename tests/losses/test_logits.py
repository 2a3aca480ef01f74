"""Logit losses (KD, soft-target cross-entropy, logit MSE, any Keras loss
softened) against independent numpy implementations of the formulas."""

import keras
import numpy as np
import pytest
from references import (
    assert_round_trip,
    logits,
    np_kd,
    np_soft_ce,
    np_softmax,
    student_gradient,
    values,
)

from kd_keras import losses


def test_kd_hand_computed():
    # softmax([ln 3, 0]) = [3/4, 1/4], softmax([0, 0]) = [1/2, 1/2];
    # KL = 3/4 ln(3/2) + 1/4 ln(1/2).
    expected = 0.75 * np.log(1.5) + 0.25 * np.log(0.5)
    got = values(losses.kd([[np.log(3.0), 0.0]], [[0.0, 0.0]], 1.0))
    np.testing.assert_allclose(got, [expected], rtol=1e-6)
    # At T=2 the logits halve: softmax([ln 3 / 2, 0]) = [√3, 1] / (√3 + 1).
    p = np.array([np.sqrt(3), 1.0]) / (np.sqrt(3) + 1)
    expected = 4 * np.sum(p * np.log(p / 0.5))
    got = values(losses.kd([[np.log(3.0), 0.0]], [[0.0, 0.0]], 2.0))
    np.testing.assert_allclose(got, [expected], rtol=1e-6)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
@pytest.mark.parametrize(
    "fn,loss_class,reference",
    [
        (losses.kd, losses.KD, np_kd),
        (
            losses.soft_target_crossentropy,
            losses.SoftTargetCrossEntropy,
            np_soft_ce,
        ),
    ],
)
def test_softmax_losses_match_numpy(fn, loss_class, reference, temperature):
    t, s = logits(0), logits(1)
    expected = reference(t, s, temperature)
    np.testing.assert_allclose(
        values(fn(t, s, temperature)), expected, rtol=1e-4, atol=1e-5
    )
    loss = loss_class(temperature=temperature)
    np.testing.assert_allclose(float(loss(t, s)), expected.mean(), rtol=1e-4)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_gradient_is_scaled_probability_gap(temperature):
    # d/ds [T**2 KL(p_t || softmax(s/T))] = T * (softmax(s/T) - p_t).
    t, s = logits(2), logits(3)
    expected = temperature * (
        np_softmax(s, temperature) - np_softmax(t, temperature)
    )
    got = student_gradient(lambda s: losses.kd(t, s, temperature), s)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_logit_mse_matches_numpy():
    t, s = logits(6), logits(7)
    np.testing.assert_allclose(
        values(losses.logit_mse(t, s)), ((s - t) ** 2).mean(-1), rtol=1e-5
    )
    assert float(losses.logit_mse([[1.0, 2.0]], [[3.0, 2.0]])[0]) == 2.0


def test_softened_kl_equals_kd():
    t, s = logits(8), logits(9)
    softened = losses.SoftenedLoss(keras.losses.KLDivergence(), 3.0)
    np.testing.assert_allclose(
        float(softened(t, s)), float(losses.KD(3.0)(t, s)), rtol=1e-4
    )


def test_sample_weight_and_reduction():
    t, s = logits(10, (4, 3)), logits(11, (4, 3))
    weights = np.array([1.0, 0.0, 2.0, 0.5], dtype="float32")
    per_sample = np_kd(t, s, 2.0)
    loss = losses.KD(2.0)
    np.testing.assert_allclose(
        float(loss(t, s, sample_weight=weights)),
        np.sum(per_sample * weights) / 4,
        rtol=1e-4,
    )
    summed = losses.KD(2.0, reduction="sum")
    np.testing.assert_allclose(float(summed(t, s)), per_sample.sum(), 1e-4)


def test_float16_inputs_are_computed_in_float32():
    t, s = logits(12), logits(13)
    got = losses.kd(t.astype("float16"), s.astype("float16"), 4.0)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    np.testing.assert_allclose(
        values(got),
        np_kd(t.astype("float16"), s.astype("float16"), 4.0),
        rtol=1e-3,
    )


@pytest.mark.parametrize(
    "loss",
    [
        losses.KD(temperature=2.5, reduction="sum"),
        losses.SoftTargetCrossEntropy(temperature=3.0),
        losses.LogitMSE(),
        losses.SoftenedLoss(keras.losses.KLDivergence(), temperature=5.0),
    ],
)
def test_serialization_round_trip(loss):
    assert_round_trip(loss, logits(14), logits(15))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_bad_temperature_value(bad):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        losses.KD(temperature=bad)


@pytest.mark.parametrize("bad", ["4", None, True])
def test_bad_temperature_type(bad):
    with pytest.raises(TypeError, match="temperature must be a number"):
        losses.KD(temperature=bad)


def test_softened_loss_needs_callable():
    with pytest.raises(TypeError, match="loss_fn"):
        losses.SoftenedLoss("not a loss", 2.0)


def test_docstring_examples():
    import math

    import kd_keras

    loss = losses.KD(temperature=1.0)
    assert float(loss([[2.0, 0.0]], [[2.0, 0.0]])) == 0.0
    # 0.75 ln 1.5 + 0.25 ln 0.5
    value = float(loss([[math.log(3.0), 0.0]], [[0.0, 0.0]]))
    assert round(value, 4) == 0.1308
    combined = kd_keras.distillation_loss([0], [[0.0, 0.0]], [[0.0, 0.0]])
    assert round(float(combined[0]), 4) == round(0.5 * math.log(2), 4)
