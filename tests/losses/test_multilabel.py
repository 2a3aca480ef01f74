"""Multi-label KD against an independent numpy implementation."""

import math

import keras
import numpy as np
import pytest
from conftest import FEATURES, make_data
from references import assert_round_trip, logits, student_gradient, values

import kd_keras
from kd_keras import losses


def np_sigmoid(z):
    return 1 / (1 + np.exp(-np.asarray(z, dtype=np.float64)))


def np_multilabel_kd(t, s, temperature):
    """T**2 times the mean over labels of the binary KL (Yang et al.)."""
    p, q = np_sigmoid(t / temperature), np_sigmoid(s / temperature)
    kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    return temperature**2 * kl.mean(axis=-1)


def test_hand_computed():
    # p = 1/2, q = 3/4: KL = 1/2 ln(2/3) + 1/2 ln 2 = ln(4/3) / 2.
    got = values(losses.multilabel_kd([[0.0]], [[math.log(3.0)]]))
    np.testing.assert_allclose(got, [0.5 * math.log(4 / 3)], rtol=1e-6)
    # Averaged over labels: a second, matching label halves it; T=2
    # halves the logits and multiplies by 4.
    got = values(
        losses.multilabel_kd([[0.0, 5.0]], [[math.log(9.0), 5.0]], 2.0)
    )
    np.testing.assert_allclose(got, [math.log(4 / 3)], rtol=1e-6)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_matches_numpy(temperature):
    t, s = logits(0), logits(1)
    expected = np_multilabel_kd(t, s, temperature)
    np.testing.assert_allclose(
        values(losses.multilabel_kd(t, s, temperature)),
        expected,
        rtol=1e-4,
        atol=1e-6,
    )
    loss = losses.MultiLabelKD(temperature)
    np.testing.assert_allclose(float(loss(t, s)), expected.mean(), rtol=1e-4)


def test_zero_when_equal():
    t = logits(2)
    np.testing.assert_array_equal(values(losses.multilabel_kd(t, t)), 0.0)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_gradient(temperature):
    # d/ds [T**2 mean(KL)] = T * (sigmoid(s/T) - sigmoid(t/T)) / labels.
    t, s = logits(3), logits(4)
    expected = (
        temperature
        * (np_sigmoid(s / temperature) - np_sigmoid(t / temperature))
        / t.shape[-1]
    )
    got = student_gradient(lambda s: losses.multilabel_kd(t, s, temperature), s)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_saturated_logits_stay_finite():
    t = np.array([[40.0, -40.0, 0.0]], dtype="float32")
    s = np.array([[-40.0, 40.0, 30.0]], dtype="float32")
    # sigmoid(40) rounds to 1 even in float64. Labels 0 and 1 cost
    # log(p / q) = 40 each; label 2 (p = 1/2, 1 - q = e^-30) costs
    # 1/2 ln(1/2) + 1/2 (ln(1/2) + 30) = 15 - ln 2.
    got = values(losses.multilabel_kd(t, s))
    np.testing.assert_allclose(got, [(95 - math.log(2)) / 3], rtol=1e-6)
    gradient = student_gradient(lambda s: losses.multilabel_kd(t, s), s)
    assert np.all(np.isfinite(gradient))


def test_declares_its_needs():
    loss = losses.MultiLabelKD()
    assert not loss.softmax_based and not loss.requires_labels


def test_distills_a_sigmoid_teacher():
    # The Distiller takes the sigmoid teacher's output back to logits.
    def tagger(units, name):
        inputs = keras.Input((FEATURES,))
        h = keras.layers.Dense(units, activation="relu")(inputs)
        outputs = keras.layers.Dense(3, activation="sigmoid")(h)
        return keras.Model(inputs, outputs, name=name)

    x, y = make_data(samples=32)
    tags = np.eye(4)[y][:, :3]
    distiller = kd_keras.Distiller(
        tagger(16, "teacher"),
        tagger(8, "student"),
        distillation_loss=losses.MultiLabelKD(),
    )
    distiller.compile("adam", loss="binary_crossentropy")
    history = distiller.fit(x, tags, epochs=1, verbose=0)
    assert np.isfinite(history.history["distillation_loss"][0])


def test_sigmoid_student_defaults_to_binary_crossentropy():
    # With alpha=1 the loss is the hard-label term alone: the mean over
    # samples and tags of -[y log p + (1 - y) log(1 - p)].
    inputs = keras.Input((2,))
    outputs = keras.layers.Dense(2, activation="sigmoid")(inputs)
    student = keras.Model(inputs, outputs)
    student.set_weights([np.eye(2, dtype="float32"), np.zeros(2, "float32")])
    x = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
    tags = np.array([[1.0, 0.0], [1.0, 1.0]], "float32")
    distiller = kd_keras.Distiller(
        keras.models.clone_model(student),
        student,
        distillation_loss=losses.MultiLabelKD(),
        alpha=1.0,
    )
    distiller.compile("sgd")
    p = np_sigmoid(x)
    expected = -np.mean(tags * np.log(p) + (1 - tags) * np.log(1 - p))
    logs = distiller.evaluate(x, tags, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["student_loss"], expected, rtol=1e-5)


def test_round_trip():
    loss = losses.MultiLabelKD(2.0, reduction="sum", name="tags")
    assert_round_trip(loss, logits(5), logits(6))


def test_docstring_example():
    loss = losses.MultiLabelKD()
    assert float(loss([[2.0, -1.0]], [[2.0, -1.0]])) == 0.0
    assert round(float(loss([[0.0]], [[math.log(3.0)]])), 4) == 0.1438


@pytest.mark.parametrize("bad", [0, -1.0])
def test_bad_temperature(bad):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        losses.MultiLabelKD(temperature=bad)
