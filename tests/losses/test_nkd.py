"""Normalized KD against a numpy transcription of the authors' code."""

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
from kd_keras.losses.nkd import NKD, nkd

# --- numpy references ---


def np_nkd(t, s, y, gamma, temperature):
    """`NKDLoss.forward` of yzd-v/cls_KD (mmcls/models/dis_losses/nkd.py),
    per sample: the reference returns the batch mean of this."""
    t, s = np.float64(t), np.float64(s)
    label = np.asarray(y).reshape(len(y), 1)
    n = s.shape[0]
    s_i = np_log_softmax(s)
    t_i = np_softmax(t)
    s_t = np.take_along_axis(s_i, label, axis=1)
    t_t = np.take_along_axis(t_i, label, axis=1)
    loss_t = -(t_t * s_t)[:, 0]
    mask = np.ones(s.shape, dtype=bool)
    np.put_along_axis(mask, label, False, axis=1)
    s_rest = s[mask].reshape(n, -1)
    t_rest = t[mask].reshape(n, -1)
    big_s = np_log_softmax(s_rest / temperature)
    big_t = np_softmax(t_rest / temperature)
    loss_non = -gamma * temperature**2 * (big_t * big_s).sum(axis=1)
    return loss_t + loss_non


def np_nkd_gradient(t, s, y, gamma, temperature):
    """Gradient of `sum(np_nkd)` with respect to `s`, derived by hand.

    Target term: `p_t * (softmax(s) - onehot)`. Non-target term:
    `gamma * T * (q_hat - p_hat)` on the non-target classes, 0 at the
    target.
    """
    t, s = np.float64(t), np.float64(s)
    rows, y = np.arange(len(y)), np.asarray(y)
    onehot = np.eye(s.shape[-1])[y]
    p_t = np_softmax(t)[rows, y]
    gradient = p_t[:, None] * (np_softmax(s) - onehot)
    others = ~onehot.astype(bool)
    shape = (len(y), s.shape[-1] - 1)
    q_hat = np_softmax(s[others].reshape(shape) / temperature)
    p_hat = np_softmax(t[others].reshape(shape) / temperature)
    gradient[others] += (gamma * temperature * (q_hat - p_hat)).ravel()
    return gradient


# --- tests ---

LABELS = np.array([0, 3, 6, 1, 3])


def test_hand_computed():
    # Teacher (1/2, 1/4, 1/4), student uniform, target 0: the target term
    # is -1/2 ln(1/3); the non-target classes are (1/2, 1/2) for both, a
    # cross-entropy of ln 2.
    t, s = [[np.log(2.0), 0.0, 0.0]], [[0.0, 0.0, 0.0]]
    got = values(nkd(t, s, [0], gamma=1.5, temperature=1.0))
    np.testing.assert_allclose(
        got, [0.5 * np.log(3.0) + 1.5 * np.log(2.0)], rtol=1e-6
    )
    # Target 1 at T=2: the target term stays at T=1 (p_t = 1/4); the
    # student's non-target classes are uniform at any T: T**2 * ln 2.
    got = values(nkd(t, s, [1], gamma=1.5, temperature=2.0))
    expected = 0.25 * np.log(3.0) + 1.5 * 4.0 * np.log(2.0)
    np.testing.assert_allclose(got, [expected], rtol=1e-6)
    # Teacher (1/5, 3/5, 1/5), target 0: non-target (3/4, 1/4) against
    # the student's (1/2, 1/2).
    t = [[0.0, np.log(3.0), 0.0]]
    got = values(nkd(t, s, [0], gamma=1.0, temperature=1.0))
    expected = 0.2 * np.log(3.0) + np.log(2.0)
    np.testing.assert_allclose(got, [expected], rtol=1e-6)


@pytest.mark.parametrize(
    "gamma,temperature", [(1.5, 1.0), (3.5, 3.0), (1.0, 0.5), (0.0, 2.0)]
)
def test_matches_the_reference(gamma, temperature):
    t, s = logits(0), logits(1)
    expected = np_nkd(t, s, LABELS, gamma, temperature)
    got = nkd(t, s, LABELS, gamma=gamma, temperature=temperature)
    np.testing.assert_allclose(values(got), expected, rtol=1e-5, atol=1e-5)
    loss = NKD(gamma=gamma, temperature=temperature)
    np.testing.assert_allclose(
        float(loss(t, s, labels=LABELS)), expected.mean(), rtol=1e-5
    )


def test_gamma_weighs_the_non_target_term_only():
    t, s = logits(2), logits(3)
    rows = np.arange(len(LABELS))
    p_t = np_softmax(t)[rows, LABELS]
    log_q_t = np_log_softmax(s)[rows, LABELS]
    np.testing.assert_allclose(
        values(nkd(t, s, LABELS, gamma=0.0, temperature=3.0)),
        -p_t * log_q_t,
        rtol=1e-5,
        atol=1e-7,
    )


def test_equal_logits_leave_the_teachers_entropies():
    # Cross-entropies, as in the reference, not KL divergences.
    t = logits(4)
    rows = np.arange(len(LABELS))
    p = np_softmax(t)
    others = np.ones(t.shape, dtype=bool)
    others[rows, LABELS] = False
    p_hat = np_softmax(t[others].reshape(len(t), -1) / 2.0)
    expected = -p[rows, LABELS] * np.log(p[rows, LABELS]) - 1.5 * 4.0 * np.sum(
        p_hat * np.log(p_hat), axis=-1
    )
    got = values(nkd(t, t, LABELS, gamma=1.5, temperature=2.0))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("gamma,temperature", [(1.5, 1.0), (3.5, 3.0)])
def test_gradient_matches_the_hand_derivation(gamma, temperature):
    t, s = logits(5, (4, 5)), logits(6, (4, 5))
    y = np.array([0, 4, 2, 2])
    got = student_gradient(lambda s: nkd(t, s, y, gamma, temperature), s)
    expected = np_nkd_gradient(t, s, y, gamma, temperature)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    numeric = numeric_gradient(
        lambda s: np.sum(np_nkd(t, s, y, gamma, temperature)), s
    )
    np.testing.assert_allclose(expected, numeric, atol=1e-6)


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
        value = values(nkd(t, s, y, 1.5, temperature))
        np.testing.assert_allclose(
            value, np_nkd(t, s, y, 1.5, temperature), rtol=1e-5
        )
    # At T=1 the logits' gaps, 2000, overflow any exp in float32.
    compiled = tf.function(jit_compile=jit_compile)(
        lambda s: nkd(t, s, y, 1.5, 1.0)
    )
    gradient = student_gradient(compiled, s)
    np.testing.assert_allclose(
        gradient, np_nkd_gradient(t, s, y, 1.5, 1.0), atol=1e-5
    )


def test_label_formats_agree():
    t, s = logits(7), logits(8)
    loss = NKD(gamma=2.0, temperature=3.0)
    expected = np_nkd(t, s, LABELS, 2.0, 3.0).mean()
    for labels in label_formats(LABELS, 7):
        np.testing.assert_allclose(
            float(loss(t, s, labels=labels)), expected, rtol=1e-5
        )


def test_labels_are_required():
    with pytest.raises(ValueError, match="needs the ground-truth labels"):
        NKD()(logits(9), logits(10))


def test_sample_weight():
    t, s = logits(11), logits(12)
    weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0], dtype="float32")
    expected = np.sum(np_nkd(t, s, LABELS, 1.5, 1.0) * weights) / 5
    got = float(NKD()(t, s, sample_weight=weights, labels=LABELS))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_declares_its_needs_and_the_reference_defaults():
    loss = NKD()
    assert loss.requires_labels and loss.softmax_based
    assert loss.gamma == 1.5 and loss.temperature == 1.0
    assert loss.name == "nkd"


def test_round_trip():
    loss = NKD(gamma=3.5, temperature=3.0, reduction="sum", name="my_nkd")
    config = loss.get_config()
    assert config["gamma"] == 3.5 and config["temperature"] == 3.0
    assert_round_trip(loss, logits(13), logits(14), labels=LABELS)


def test_compiled_step_follows_the_temperature():
    t, s = logits(15), logits(16)
    loss = NKD()

    @tf.function
    def step(t, s, y):
        return loss(t, s, labels=y)

    step(t, s, LABELS)
    loss.temperature = 3.0
    expected = np_nkd(t, s, LABELS, 1.5, 3.0).mean()
    np.testing.assert_allclose(float(step(t, s, LABELS)), expected, 1e-5)
    assert step.experimental_get_tracing_count() == 1


def test_one_distiller_step_follows_the_gradient(data):
    """The Distiller passes the labels; one SGD step follows the hand
    gradient of `0.3 * ce + 0.7 * nkd`."""
    x, y = data
    teacher, student = make_mlp(32, "teacher"), make_mlp(16, "student")
    before = student.get_weights()
    t = teacher.predict(x, verbose=0)
    s = student.predict(x, verbose=0)
    distiller = kd_keras.Distiller(
        teacher, student, NKD(gamma=3.5, temperature=3.0), alpha=0.3
    )
    distiller.compile(keras.optimizers.SGD(0.1))
    distiller.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    ce_gradient = np_softmax(s) - np.eye(s.shape[-1])[y]
    logit_gradient = (
        0.3 * ce_gradient + 0.7 * np_nkd_gradient(t, s, y, 3.5, 3.0)
    ) / len(x)
    assert_one_sgd_step(before, student.get_weights(), x, logit_gradient, 0.1)


def test_docstring_example():
    loss = NKD(gamma=1.5, temperature=1.0)
    got = float(loss([[np.log(2.0), 0.0, 0.0]], [[0.0] * 3], labels=[0]))
    assert round(got, 4) == 1.589


def test_bad_gamma():
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        NKD(gamma=-1.0)
    with pytest.raises(TypeError, match="gamma must be a number"):
        NKD(gamma="1")


@pytest.mark.parametrize("bad", [0, -4.0])
def test_bad_temperature(bad):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        NKD(temperature=bad)


def test_float16_inputs_are_computed_in_float32():
    t, s = logits(17), logits(18)
    got = nkd(t.astype("float16"), s.astype("float16"), LABELS)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
