"""Decoupled KD against an independent numpy implementation of the paper."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_mlp
from references import (
    assert_round_trip,
    label_formats,
    logits,
    np_dkd,
    np_dkd_terms,
    np_log_softmax,
    np_softmax,
    numeric_gradient,
    student_gradient,
    values,
)

import kd_keras
from kd_keras import losses

LABELS = np.array([0, 3, 6, 1, 3])


def np_nckd_reference_code(t, s, y, temperature):
    """NCKD as mdistiller computes it: the target logit lowered by 1000."""
    gt = np.eye(t.shape[-1])[y]
    log_p = np_log_softmax(np.float64(t) / temperature - 1000.0 * gt)
    log_q = np_log_softmax(np.float64(s) / temperature - 1000.0 * gt)
    kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)
    return temperature**2 * kl


def test_hand_computed():
    # Teacher [ln 2, 0, 0] at T=1: p = [1/2, 1/4, 1/4]; student uniform.
    # TCKD = KL([1/2, 1/2] || [1/3, 2/3]) = 1/2 ln(3/2) + 1/2 ln(3/4);
    # the non-target classes are uniform for both: NCKD = 0.
    t, s = [[np.log(2.0), 0.0, 0.0]], [[0.0, 0.0, 0.0]]
    tckd = 0.5 * np.log(1.5) + 0.5 * np.log(0.75)
    np.testing.assert_allclose(
        values(losses.tckd(t, s, [0], 1.0)), [tckd], rtol=1e-6
    )
    np.testing.assert_allclose(
        values(losses.nckd(t, s, [0], 1.0)), [0.0], atol=1e-7
    )
    # Target class 1: TCKD = KL([1/4, 3/4] || [1/3, 2/3]); non-target
    # [2/3, 1/3] against [1/2, 1/2]; at T=2 all logits halve.
    got = values(
        losses.dkd(t, s, [1], tckd_weight=2.0, nckd_weight=3.0, temperature=1.0)
    )
    tckd = 0.25 * np.log(0.75) + 0.75 * np.log(1.125)
    nckd = 2 / 3 * np.log(4 / 3) + 1 / 3 * np.log(2 / 3)
    np.testing.assert_allclose(got, [2 * tckd + 3 * nckd], rtol=1e-6)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_matches_numpy(temperature):
    t, s = logits(0), logits(1)
    tckd, nckd = np_dkd_terms(t, s, LABELS, temperature)
    tolerance = {"rtol": 1e-4, "atol": 1e-5}
    np.testing.assert_allclose(
        values(losses.tckd(t, s, LABELS, temperature)), tckd, **tolerance
    )
    np.testing.assert_allclose(
        values(losses.nckd(t, s, LABELS, temperature)), nckd, **tolerance
    )
    expected = 0.5 * tckd + 2.0 * nckd
    got = losses.dkd(t, s, LABELS, 0.5, 2.0, temperature)
    np.testing.assert_allclose(values(got), expected, **tolerance)
    loss = losses.DKD(0.5, 2.0, temperature)
    np.testing.assert_allclose(
        float(loss(t, s, labels=LABELS)), expected.mean(), rtol=1e-4
    )


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_exact_mask_agrees_with_the_reference_code(temperature):
    t, s = logits(2), logits(3)
    np.testing.assert_allclose(
        values(losses.nckd(t, s, LABELS, temperature)),
        np_nckd_reference_code(t, s, LABELS, temperature),
        rtol=1e-4,
    )


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_is_tckd_plus_weighted_nckd(temperature):
    # Zhao et al., eq. (6): KD = TCKD + (1 - p_t) NCKD, T**2 on each side.
    t, s = logits(4), logits(5)
    p_t = np_softmax(t, temperature)[np.arange(5), LABELS]
    decoupled = values(losses.tckd(t, s, LABELS, temperature)) + (
        1 - p_t
    ) * values(losses.nckd(t, s, LABELS, temperature))
    np.testing.assert_allclose(
        values(losses.kd(t, s, temperature)), decoupled, rtol=1e-4
    )


def test_gradient_matches_finite_differences():
    t, s = logits(6, (4, 5)), logits(7, (4, 5))
    y = np.array([0, 4, 2, 2])

    def total(s):
        return np.sum(np_dkd(t, s, y, 1.0, 8.0, 4.0))

    got = student_gradient(lambda s: losses.dkd(t, s, y, 1.0, 8.0, 4.0), s)
    np.testing.assert_allclose(got, numeric_gradient(total, s), atol=1e-4)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_saturated_logits_stay_finite(jit_compile):
    # A teacher sure of its class: 1 - p_t rounds to 0 in float32 (not
    # in float64), yet log(1 - p_t) stays exact and nothing is NaN.
    t = np.array([[25.0, 0.0, 1.0], [0.0, -20.0, 25.0]], dtype="float32")
    s = np.array([[0.0, 2.0, 1.0], [30.0, 0.0, -30.0]], dtype="float32")
    assert 1 - np.max(np_softmax(t).astype("float32")) == 0
    y = np.array([0, 2])
    value = values(losses.dkd(t, s, y, temperature=1.0))
    np.testing.assert_allclose(value, np_dkd(t, s, y, 1.0, 8.0, 1.0), rtol=1e-4)
    compiled = tf.function(jit_compile=jit_compile)(
        lambda s: losses.dkd(t, s, y, temperature=1.0)
    )
    assert np.all(np.isfinite(student_gradient(compiled, s)))


def test_one_hot_and_integer_labels_agree():
    t, s = logits(8), logits(9)
    loss = losses.DKD(warmup=0)
    expected = float(loss(t, s, labels=LABELS))
    for labels in label_formats(LABELS, 7):
        np.testing.assert_allclose(
            float(loss(t, s, labels=labels)), expected, rtol=1e-6
        )


def test_labels_are_required():
    with pytest.raises(ValueError, match="needs the ground-truth labels"):
        losses.DKD()(logits(10), logits(11))


def test_warmup_follows_the_epochs():
    t, s = logits(12), logits(13)
    full = np_dkd(t, s, LABELS, 1.0, 8.0, 4.0).mean()
    loss = losses.DKD(warmup=4)
    # Called by hand, before any epoch: the full value.
    assert loss.warmup_scale == 1.0
    np.testing.assert_allclose(float(loss(t, s, labels=LABELS)), full, 1e-4)
    for epoch, scale in [(0, 0.25), (1, 0.5), (3, 1.0), (10, 1.0)]:
        loss.on_epoch_begin(epoch)
        assert loss.warmup_scale == scale
        np.testing.assert_allclose(
            float(loss(t, s, labels=LABELS)), scale * full, rtol=1e-4
        )
    no_warmup = losses.DKD(warmup=0)
    no_warmup.on_epoch_begin(0)
    assert no_warmup.warmup_scale == 1.0


def test_compiled_step_follows_warmup_and_temperature():
    t, s = logits(14), logits(15)
    loss = losses.DKD(warmup=2)

    @tf.function
    def step(t, s, y):
        return loss(t, s, labels=y)

    full = float(step(t, s, LABELS))
    loss.on_epoch_begin(0)
    np.testing.assert_allclose(float(step(t, s, LABELS)), 0.5 * full, 1e-6)
    loss.temperature = 2.0
    expected = 0.5 * np_dkd(t, s, LABELS, 1.0, 8.0, 2.0).mean()
    np.testing.assert_allclose(float(step(t, s, LABELS)), expected, 1e-4)
    assert step.experimental_get_tracing_count() == 1


def test_a_fit_shorter_than_the_warmup_leaves_the_full_loss(teacher, data):
    """`evaluate` after a 1-epoch fit reports DKD, not its warmed-up part."""
    x, y = data
    loss = losses.DKD(warmup=4)
    distiller = kd_keras.Distiller(
        teacher, make_mlp(16, "student"), loss, alpha=0.0
    )
    distiller.compile("sgd")
    history = distiller.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    t = teacher.predict(x, verbose=0)
    s = distiller.student.predict(x, verbose=0)
    assert loss.warmup_scale == 1.0
    logs = distiller.evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    np.testing.assert_allclose(
        logs["distillation_loss"],
        np_dkd(t, s, y, 1.0, 8.0, 4.0).mean(),
        rtol=1e-4,
    )
    # The training step itself ran at a quarter of the loss.
    assert history.history["distillation_loss"][0] < logs["distillation_loss"]


def test_sample_weight():
    t, s = logits(16), logits(17)
    weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0], dtype="float32")
    loss = losses.DKD(warmup=0)
    expected = np.sum(np_dkd(t, s, LABELS, 1.0, 8.0, 4.0) * weights) / 5
    got = float(loss(t, s, sample_weight=weights, labels=LABELS))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_declares_its_needs():
    loss = losses.DKD()
    assert loss.requires_labels and loss.softmax_based


def test_round_trip():
    loss = losses.DKD(2.0, 4.0, 3.0, 10, reduction="sum", name="my_dkd")
    config = loss.get_config()
    assert config["tckd_weight"] == 2.0 and config["nckd_weight"] == 4.0
    assert config["warmup"] == 10 and "alpha" not in config
    assert "warmup_scale" not in config
    assert_round_trip(loss, logits(18), logits(19), labels=LABELS)


def test_docstring_example():
    loss = losses.DKD(temperature=1.0)
    logits_ = [[2.0, 0.0, 1.0]]
    assert float(loss(logits_, logits_, labels=[0])) == 0.0
    loss.on_epoch_begin(0)
    assert loss.warmup_scale == 0.05


@pytest.mark.parametrize("argument", ["tckd_weight", "nckd_weight", "warmup"])
def test_bad_weights(argument):
    with pytest.raises(ValueError, match=f"{argument} must be >= 0"):
        losses.DKD(**{argument: -1.0})
    with pytest.raises(TypeError, match=f"{argument} must be a number"):
        losses.DKD(**{argument: "1"})


@pytest.mark.parametrize("bad", [0, -4.0])
def test_bad_temperature(bad):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        losses.DKD(temperature=bad)


def test_float16_inputs_are_computed_in_float32():
    t, s = logits(20), logits(21)
    got = losses.dkd(t.astype("float16"), s.astype("float16"), LABELS)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
