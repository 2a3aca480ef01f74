"""Regression KD against independent numpy implementations."""

import re

import keras
import numpy as np
import pytest
from conftest import FEATURES, make_data
from references import assert_round_trip, logits, student_gradient, values

import kd_keras
from kd_keras import losses


def np_huber(t, s, delta):
    error = np.float64(s) - t
    quadratic = 0.5 * error**2
    linear = delta * np.abs(error) - 0.5 * delta**2
    return np.where(np.abs(error) <= delta, quadratic, linear).mean(axis=-1)


def test_hand_computed():
    t, s = [[0.0, 0.0]], [[0.5, 3.0]]
    # MSE: (0.25 + 9) / 2; Huber(1): (0.5 * 0.25 + (3 - 0.5)) / 2.
    np.testing.assert_allclose(values(losses.regression_kd(t, s)), [4.625])
    got = losses.regression_kd(t, s, loss="huber", delta=1.0)
    np.testing.assert_allclose(values(got), [1.3125])
    # With delta=4 both errors are in the quadratic zone: half the MSE.
    got = losses.regression_kd(t, s, loss="huber", delta=4.0)
    np.testing.assert_allclose(values(got), [2.3125])


@pytest.mark.parametrize("delta", [0.5, 1.0, 3.0])
def test_matches_numpy(delta):
    t, s = logits(0), logits(1)
    np.testing.assert_allclose(
        values(losses.regression_kd(t, s)),
        ((np.float64(s) - t) ** 2).mean(-1),
        rtol=1e-5,
    )
    expected = np_huber(t, s, delta)
    loss = losses.RegressionKD("huber", delta)
    np.testing.assert_allclose(values(loss.call(t, s)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(loss(t, s)), expected.mean(), 1e-5)


def test_huber_is_keras_huber():
    t, s = logits(2), logits(3)
    keras_huber = keras.losses.Huber(delta=2.0)
    np.testing.assert_allclose(
        float(losses.RegressionKD("huber", 2.0)(t, s)),
        float(keras_huber(t, s)),
        rtol=1e-6,
    )


@pytest.mark.parametrize("delta", [0.5, 2.0])
def test_gradients(delta):
    t, s = logits(4), logits(5)
    units = t.shape[-1]
    got = student_gradient(lambda s: losses.regression_kd(t, s), s)
    np.testing.assert_allclose(got, 2 * (s - t) / units, rtol=1e-5)
    # Huber: the error, clipped to [-delta, delta].
    got = student_gradient(
        lambda s: losses.regression_kd(t, s, "huber", delta), s
    )
    np.testing.assert_allclose(
        got, np.clip(s - t, -delta, delta) / units, rtol=1e-5, atol=1e-7
    )


def test_single_output():
    t = np.array([[1.0], [2.0], [-1.0]], dtype="float32")
    s = np.array([[1.5], [0.0], [-1.0]], dtype="float32")
    np.testing.assert_allclose(
        values(losses.regression_kd(t, s)), [0.25, 4.0, 0.0]
    )


def test_declares_its_needs():
    loss = losses.RegressionKD()
    assert not loss.softmax_based and not loss.requires_labels


def test_distills_a_regression_teacher():
    def regressor(units, name):
        inputs = keras.Input((FEATURES,))
        h = keras.layers.Dense(units, activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(1)(h), name=name)

    x, _ = make_data(samples=32)
    y = x.sum(axis=-1, keepdims=True)
    distiller = kd_keras.Distiller(
        regressor(16, "teacher"),
        regressor(8, "student"),
        distillation_loss=losses.RegressionKD("huber"),
    )
    distiller.compile("adam")
    history = distiller.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["distillation_loss"][0])


@pytest.mark.parametrize(
    "loss", [losses.RegressionKD(), losses.RegressionKD("huber", 0.5)]
)
def test_round_trip(loss):
    assert_round_trip(loss, logits(6), logits(7))


def test_docstring_example():
    loss = losses.RegressionKD("huber", delta=1.0)
    assert float(loss([[0.0, 0.0]], [[0.5, 3.0]])) == 1.3125


@pytest.mark.parametrize("bad", ["mae", "MSE", None, keras.losses.Huber()])
def test_unknown_loss(bad):
    with pytest.raises(ValueError, match="loss must be one of 'mse', 'huber'"):
        losses.RegressionKD(bad)
    with pytest.raises(ValueError, match=re.escape(f"loss={bad!r}")):
        losses.regression_kd([[0.0]], [[1.0]], loss=bad)


@pytest.mark.parametrize("bad", [0, -1.0])
def test_bad_delta(bad):
    with pytest.raises(ValueError, match="delta must be > 0"):
        losses.RegressionKD("huber", delta=bad)
