"""Weighted soft labels against a numpy transcription of the authors' code."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_one_sgd_step, make_mlp
from references import (
    assert_round_trip,
    label_formats,
    logits,
    np_log_softmax,
    np_softmax,
    numeric_gradient,
    student_gradient,
    values,
)

import kd_keras
from kd_keras.losses.wsld import WSLD, wsld, wsld_weight

# --- numpy references ---


def np_wsld_weight(t, s, y):
    """The focal weight of `WSLDistiller.forward` (bellymonster/Weighted-
    Soft-Label-Distillation, knowledge_distiller.py), per sample."""
    one_hot_label = np.eye(np.shape(t)[-1])[y]
    softmax_loss_s = -np.sum(one_hot_label * np_log_softmax(s), axis=1)
    softmax_loss_t = -np.sum(one_hot_label * np_log_softmax(t), axis=1)
    focal_weight = softmax_loss_s / (softmax_loss_t + 1e-7)
    focal_weight = np.maximum(focal_weight, 0.0)
    return 1 - np.exp(-focal_weight)


def np_wsld(t, s, y, temperature, weight_from=None):
    """`WSLDistiller.forward`'s `soft_loss` per sample, before the batch
    mean and `alpha`. `weight_from`: student logits the (detached) weight
    is computed from, `s` by default."""
    t, s = np.float64(t), np.float64(s)
    t_soft_label = np_softmax(t / temperature)
    softmax_loss = -np.sum(
        t_soft_label * np_log_softmax(s / temperature), axis=1
    )
    focal_weight = np_wsld_weight(
        t, s if weight_from is None else weight_from, y
    )
    return temperature**2 * focal_weight * softmax_loss


def np_wsld_gradient(t, s, y, temperature):
    """Gradient of `sum(np_wsld)` w.r.t. `s`, the weight held constant (it
    is computed from detached logits): `w * T * (q - p)`, by hand."""
    w = np_wsld_weight(t, s, y)
    return (
        w[:, None]
        * temperature
        * (np_softmax(s / temperature) - np_softmax(t / temperature))
    )


# --- tests ---

LABELS = np.array([0, 3, 6, 1, 3])


def test_hand_computed():
    # Target 0, teacher (3/4, 1/4), student (1/2, 1/2) at T=1: the
    # cross-entropies are ln(4/3) and ln 2, the soft cross-entropy ln 2.
    t, s = [[np.log(3.0), 0.0]], [[0.0, 0.0]]
    weight = 1 - np.exp(-np.log(2.0) / np.log(4 / 3))
    np.testing.assert_allclose(
        values(wsld_weight(t, s, [0])), [weight], rtol=1e-6
    )
    np.testing.assert_allclose(
        values(wsld(t, s, [0], temperature=1.0)),
        [weight * np.log(2.0)],
        rtol=1e-6,
    )
    # At T=2 the teacher (9/10, 1/10) is softened to (3/4, 1/4), but the
    # weight is read at T=1: ln 2 against ln(10/9), or ln 10 for target 1.
    t = [[2 * np.log(3.0), 0.0]]
    for label, ce_teacher in [(0, np.log(10 / 9)), (1, np.log(10.0))]:
        weight = 1 - np.exp(-np.log(2.0) / ce_teacher)
        np.testing.assert_allclose(
            values(wsld(t, s, [label], temperature=2.0)),
            [4.0 * weight * np.log(2.0)],
            rtol=1e-6,
        )


def test_equal_logits_leave_the_weighted_entropy():
    # The weight is 1 - exp(-1) and the soft term the teacher's entropy:
    # a cross-entropy, as in the reference, not a KL divergence.
    t = logits(0)
    p = np_softmax(t / 3.0)
    entropy = -np.sum(p * np.log(p), axis=-1)
    np.testing.assert_allclose(
        values(wsld(t, t, LABELS, temperature=3.0)),
        9.0 * (1 - np.exp(-1.0)) * entropy,
        rtol=1e-5,
    )


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_matches_the_reference(temperature):
    t, s = logits(1), logits(2)
    expected = np_wsld(t, s, LABELS, temperature)
    np.testing.assert_allclose(
        values(wsld_weight(t, s, LABELS)),
        np_wsld_weight(t, s, LABELS),
        rtol=1e-5,
        atol=1e-7,
    )
    got = wsld(t, s, LABELS, temperature=temperature)
    np.testing.assert_allclose(values(got), expected, rtol=1e-5, atol=1e-6)
    loss = WSLD(temperature=temperature)
    np.testing.assert_allclose(
        float(loss(t, s, labels=LABELS)), expected.mean(), rtol=1e-5
    )


def test_the_weight_follows_the_students_loss_against_the_teachers():
    # Teacher unsure, student sure of the target: the student's loss is
    # far below the teacher's and the sample weighs little; the other way
    # round it weighs almost fully.
    unsure, sure = [[0.5, 0.0, 0.0]], [[3.0, 0.0, 0.0]]
    small = values(wsld_weight(unsure, sure, [0]))
    large = values(wsld_weight(sure, unsure, [0]))
    assert 0.0 < small[0] < 0.12 and 0.999 < large[0] < 1.0
    np.testing.assert_allclose(
        small, np_wsld_weight(unsure, sure, [0]), rtol=1e-5
    )
    np.testing.assert_allclose(
        large, np_wsld_weight(sure, unsure, [0]), rtol=1e-5
    )


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_gradient_holds_the_weight_constant(temperature):
    t, s = logits(3, (4, 5)), logits(4, (4, 5))
    y = np.array([0, 4, 2, 2])
    got = student_gradient(lambda s: wsld(t, s, y, temperature), s)
    expected = np_wsld_gradient(t, s, y, temperature)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    frozen = numeric_gradient(
        lambda v: np.sum(np_wsld(t, v, y, temperature, weight_from=s)), s
    )
    np.testing.assert_allclose(expected, frozen, atol=1e-6)
    # Differentiating through the weight would give another gradient.
    through = numeric_gradient(
        lambda v: np.sum(np_wsld(t, v, y, temperature)), s
    )
    assert np.max(np.abs(through - expected)) > 1e-2


def test_a_sure_teacher_divides_by_the_epsilon():
    # ln softmax of the target is exactly 0 in float32 for both: the ratio
    # is 0 / 1e-7, not 0 / 0, and the loss is 0.
    t = np.array([[100.0, 0.0], [0.0, 100.0]], dtype="float32")
    value = values(wsld(t, t, [0, 1], temperature=1.0))
    np.testing.assert_allclose(value, np_wsld(t, t, [0, 1], 1.0), atol=1e-30)
    # A student as sure of another class: the weight is 1.
    s = t[::-1].copy()
    np.testing.assert_allclose(values(wsld_weight(t, s, [0, 1])), [1.0, 1.0])


@pytest.mark.parametrize("jit_compile", [False, True])
def test_extreme_logits_stay_finite(jit_compile):
    t = np.array(
        [[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0], [0, 0, 1000]],
        dtype="float32",
    )
    s = np.array(
        [[-1000.0, 1000.0, 0.0], [1000.0, -1000.0, -1000.0], [1000, 0, -1000]],
        dtype="float32",
    )
    y = np.array([0, 2, 2])
    for temperature in (1.0, 4.0):
        value = values(wsld(t, s, y, temperature))
        np.testing.assert_allclose(
            value, np_wsld(t, s, y, temperature), rtol=1e-5
        )
    compiled = tf.function(jit_compile=jit_compile)(
        lambda s: wsld(t, s, y, 1.0)
    )
    gradient = student_gradient(compiled, s)
    np.testing.assert_allclose(
        gradient, np_wsld_gradient(t, s, y, 1.0), atol=1e-5
    )


def test_label_formats_agree():
    t, s = logits(5), logits(6)
    loss = WSLD(temperature=4.0)
    expected = np_wsld(t, s, LABELS, 4.0).mean()
    for labels in label_formats(LABELS, 7):
        np.testing.assert_allclose(
            float(loss(t, s, labels=labels)), expected, rtol=1e-5
        )


def test_labels_are_required():
    with pytest.raises(ValueError, match="needs the ground-truth labels"):
        WSLD()(logits(7), logits(8))


def test_sample_weight():
    t, s = logits(9), logits(10)
    weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0], dtype="float32")
    expected = np.sum(np_wsld(t, s, LABELS, 2.0) * weights) / 5
    got = float(WSLD()(t, s, sample_weight=weights, labels=LABELS))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_declares_its_needs_and_the_reference_default():
    loss = WSLD()
    assert loss.requires_labels and loss.softmax_based
    assert loss.temperature == 2.0 and loss.name == "wsld"


def test_round_trip():
    loss = WSLD(temperature=4.0, reduction="sum", name="my_wsld")
    config = loss.get_config()
    assert config["temperature"] == 4.0 and config["name"] == "my_wsld"
    assert_round_trip(loss, logits(11), logits(12), labels=LABELS)


def test_compiled_step_follows_the_temperature():
    t, s = logits(13), logits(14)
    loss = WSLD()

    @tf.function
    def step(t, s, y):
        return loss(t, s, labels=y)

    step(t, s, LABELS)
    loss.temperature = 4.0
    expected = np_wsld(t, s, LABELS, 4.0).mean()
    np.testing.assert_allclose(float(step(t, s, LABELS)), expected, 1e-5)
    assert step.experimental_get_tracing_count() == 1


def test_one_distiller_step_follows_the_gradient(data):
    """The reference's `ce + 2.5 * wsld`, halved: alpha 0.5, weight 2.5."""
    x, y = data
    teacher, student = make_mlp(32, "teacher"), make_mlp(16, "student")
    before = student.get_weights()
    t = teacher.predict(x, verbose=0)
    s = student.predict(x, verbose=0)
    distiller = kd_keras.Distiller(
        teacher,
        student,
        WSLD(temperature=2.0),
        alpha=0.5,
        distillation_loss_weights=[2.5],
    )
    distiller.compile(keras.optimizers.SGD(0.1))
    distiller.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    ce_gradient = np_softmax(s) - np.eye(s.shape[-1])[y]
    logit_gradient = (
        0.5 * ce_gradient + 0.5 * 2.5 * np_wsld_gradient(t, s, y, 2.0)
    ) / len(x)
    assert_one_sgd_step(before, student.get_weights(), x, logit_gradient, 0.1)


def test_docstring_example():
    loss = WSLD(temperature=1.0)
    got = float(loss([[0.0, 0.0]], [[0.0, 0.0]], labels=[0]))
    assert round(got, 4) == 0.4382


@pytest.mark.parametrize("bad", [0, -4.0])
def test_bad_temperature(bad):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        WSLD(temperature=bad)


def test_float16_inputs_are_computed_in_float32():
    t, s = logits(15), logits(16)
    got = wsld(t.astype("float16"), s.astype("float16"), LABELS)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
