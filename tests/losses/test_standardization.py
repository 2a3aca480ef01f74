"""Logit standardisation, `standardize=True` of `KD`, `DKD` and `DIST`,
against numpy transcriptions of the released code.

`np_normalize` is `normalize` of sunshangquan/logit-standardization-KD
(`mdistiller/distillers/KD.py` and `DKD.py`, commit
f6e5aa5172bad618e801163c3385322eea673754): `logit.std` is torch's unbiased
standard deviation, numpy's `ddof=1`. `np_kd_loss` and `np_dkd_loss` are
`kd_loss` and `dkd_loss` there, per sample (the code averages them over the
batch). That code has no DIST: `np_dist_loss` is `DIST.forward` of
hunto/image_classification_sota (`lib/models/losses/dist_kd.py`, commit
6f7a70a1dd57fd88413d83909d3d53243068f701) with the logits standardised
first, as `kd_loss` and `dkd_loss` do.
"""

import keras
import numpy as np
import pytest
from conftest import make_data, make_mlp
from references import (
    assert_round_trip,
    logits,
    numeric_gradient,
    student_gradient,
    values,
)

import kd_keras
from kd_keras import losses
from kd_keras.losses.base import standardize

LABELS = np.array([0, 3, 6, 1, 3])

# --- The reference, from the released code -------------------------------


def np_normalize(logit):
    mean = logit.mean(axis=-1, keepdims=True)
    stdv = logit.std(axis=-1, keepdims=True, ddof=1)  # torch.std: unbiased
    return (logit - mean) / (1e-7 + stdv)


def np_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def np_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def np_kl_div(log_input, target):
    """`F.kl_div(input, target, reduction="none")`: 0 where target is 0."""
    safe = np.where(target > 0, target, 1.0)
    return np.where(target > 0, target * (np.log(safe) - log_input), 0.0)


def np_kd_loss(logits_student_in, logits_teacher_in, temperature, stand):
    """`kd_loss`, per sample (before `.mean()`)."""
    s_in, t_in = np.float64(logits_student_in), np.float64(logits_teacher_in)
    logits_student = np_normalize(s_in) if stand else s_in
    logits_teacher = np_normalize(t_in) if stand else t_in
    log_pred_student = np_log_softmax(logits_student / temperature)
    pred_teacher = np_softmax(logits_teacher / temperature)
    loss_kd = np_kl_div(log_pred_student, pred_teacher).sum(1)
    return loss_kd * temperature**2


def np_cat_mask(t, mask1, mask2):
    t1 = (t * mask1).sum(axis=1, keepdims=True)
    t2 = (t * mask2).sum(axis=1, keepdims=True)
    return np.concatenate([t1, t2], axis=1)


def np_dkd_loss(
    logits_student_in,
    logits_teacher_in,
    target,
    alpha,
    beta,
    temperature,
    stand,
):
    """`dkd_loss`, per sample (the code sums and divides by the batch)."""
    s_in, t_in = np.float64(logits_student_in), np.float64(logits_teacher_in)
    logits_student = np_normalize(s_in) if stand else s_in
    logits_teacher = np_normalize(t_in) if stand else t_in
    gt_mask = np.eye(s_in.shape[1])[target]
    other_mask = 1.0 - gt_mask
    pred_student = np_softmax(logits_student / temperature)
    pred_teacher = np_softmax(logits_teacher / temperature)
    pred_student = np_cat_mask(pred_student, gt_mask, other_mask)
    pred_teacher = np_cat_mask(pred_teacher, gt_mask, other_mask)
    log_pred_student = np.log(pred_student)
    tckd_loss = (
        np_kl_div(log_pred_student, pred_teacher).sum(1) * temperature**2
    )
    pred_teacher_part2 = np_softmax(
        logits_teacher / temperature - 1000.0 * gt_mask
    )
    log_pred_student_part2 = np_log_softmax(
        logits_student / temperature - 1000.0 * gt_mask
    )
    nckd_loss = (
        np_kl_div(log_pred_student_part2, pred_teacher_part2).sum(1)
        * temperature**2
    )
    return alpha * tckd_loss + beta * nckd_loss


def np_pearson_correlation(a, b, eps=1e-8):
    a = a - a.mean(1)[:, None]
    b = b - b.mean(1)[:, None]
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / (norms + eps)


def np_dist_loss(z_s, z_t, beta, gamma, tau, stand):
    """`DIST.forward`, the batch's loss, standardised logits if `stand`."""
    z_s, z_t = np.float64(z_s), np.float64(z_t)
    if stand:
        z_s, z_t = np_normalize(z_s), np_normalize(z_t)
    y_s = np_softmax(z_s / tau)
    y_t = np_softmax(z_t / tau)
    inter_loss = tau**2 * (1 - np_pearson_correlation(y_s, y_t).mean())
    intra_loss = tau**2 * (1 - np_pearson_correlation(y_s.T, y_t.T).mean())
    return beta * inter_loss + gamma * intra_loss


# --- The helper ------------------------------------------------------------


def test_standardize_is_the_reference_z_score():
    # The unbiased standard deviation of (1, 2, 3) is 1 (the biased one
    # would give +-1.2247).
    np.testing.assert_allclose(
        values(standardize([[1.0, 2.0, 3.0]])), [[-1.0, 0.0, 1.0]], rtol=1e-6
    )
    z = logits(0, (4, 3, 7))
    got = values(standardize(z))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np_normalize(np.float64(z)), atol=1e-6)
    np.testing.assert_allclose(got.mean(-1), 0.0, atol=1e-6)
    np.testing.assert_allclose(got.std(-1, ddof=1), 1.0, rtol=1e-5)
    got16 = standardize(z.astype("float16"))
    assert got16.dtype == "float32"


def test_standardize_is_safe_for_constant_logits():
    z = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]], "float32")
    got = values(standardize(z))
    np.testing.assert_array_equal(got[0], [0.0, 0.0, 0.0])
    gradient = student_gradient(lambda x: standardize(x) * [1.0, 2.0, 3.0], z)
    assert np.isfinite(gradient).all()
    # One class: zero, where torch.std would give NaN.
    np.testing.assert_array_equal(values(standardize([[5.0]])), [[0.0]])
    # Constant student logits: a finite KD value and gradient.
    t = logits(1, (2, 3))
    value = values(losses.kd(t, z, 2.0, standardize=True))
    np.testing.assert_allclose(
        value, np_kd_loss(z, t, 2.0, True), rtol=1e-5, atol=1e-6
    )
    gradient = student_gradient(
        lambda x: losses.kd(t, x, 2.0, standardize=True), z
    )
    assert np.isfinite(gradient).all()


# --- Values ----------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kd_matches_the_reference(temperature):
    t, s = logits(2), logits(3)
    expected = np_kd_loss(s, t, temperature, True)
    got = losses.kd(t, s, temperature, standardize=True)
    np.testing.assert_allclose(values(got), expected, rtol=1e-4, atol=1e-6)
    loss = losses.KD(temperature, standardize=True)
    np.testing.assert_allclose(float(loss(t, s)), expected.mean(), rtol=1e-4)
    # Standardising changes the value: the test compares something.
    assert not np.allclose(expected, np_kd_loss(s, t, temperature, False))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_dkd_matches_the_reference(temperature):
    t, s = logits(4), logits(5)
    expected = np_dkd_loss(s, t, LABELS, 9.0, 72.0, temperature, True)
    got = losses.dkd(t, s, LABELS, 9.0, 72.0, temperature, standardize=True)
    np.testing.assert_allclose(values(got), expected, rtol=1e-4, atol=1e-5)
    loss = losses.DKD(9.0, 72.0, temperature, standardize=True)
    np.testing.assert_allclose(
        float(loss(t, s, labels=LABELS)), expected.mean(), rtol=1e-4
    )
    # The terms alone: small KLs, float32 rounding (1e-7) times T**2.
    tckd = np_dkd_loss(s, t, LABELS, 1.0, 0.0, temperature, True)
    nckd = np_dkd_loss(s, t, LABELS, 0.0, 1.0, temperature, True)
    np.testing.assert_allclose(
        values(losses.tckd(t, s, LABELS, temperature, standardize=True)),
        tckd,
        rtol=1e-4,
        atol=2e-7 * temperature**2,
    )
    np.testing.assert_allclose(
        values(losses.nckd(t, s, LABELS, temperature, standardize=True)),
        nckd,
        rtol=1e-4,
        atol=2e-7 * temperature**2,
    )


@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("beta,gamma", [(1.0, 1.0), (2.0, 0.5)])
def test_dist_matches_the_reference(beta, gamma, temperature):
    t, s = logits(6), logits(7)
    expected = np_dist_loss(s, t, beta, gamma, temperature, True)
    loss = losses.DIST(beta, gamma, temperature, standardize=True)
    np.testing.assert_allclose(float(loss(t, s)), expected, rtol=1e-4)
    got = losses.dist(t, s, beta, gamma, temperature, standardize=True)
    np.testing.assert_allclose(float(np.mean(values(got))), expected, rtol=1e-4)


# --- Gradients ---------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_kd_gradient_matches_the_reference(temperature):
    t, s = logits(8), logits(9)
    got = student_gradient(
        lambda x: losses.kd(t, x, temperature, standardize=True), s
    )
    expected = numeric_gradient(
        lambda x: np_kd_loss(x, t, temperature, True).sum(), s
    )
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # It differs from the gradient without standardisation.
    plain = student_gradient(lambda x: losses.kd(t, x, temperature), s)
    assert not np.allclose(got, plain, atol=1e-3)


def test_dkd_and_dist_gradients_match_the_reference():
    t, s = logits(10), logits(11)
    got = student_gradient(
        lambda x: losses.dkd(t, x, LABELS, 1.0, 8.0, 2.0, standardize=True), s
    )
    expected = numeric_gradient(
        lambda x: np_dkd_loss(x, t, LABELS, 1.0, 8.0, 2.0, True).sum(), s
    )
    np.testing.assert_allclose(got, expected, atol=1e-4)
    loss = losses.DIST(1.0, 1.0, 2.0, standardize=True)
    got = student_gradient(lambda x: loss(t, x), s)
    expected = numeric_gradient(
        lambda x: np_dist_loss(x, t, 1.0, 1.0, 2.0, True), s
    )
    np.testing.assert_allclose(got, expected, atol=1e-5)


# --- Invariance ------------------------------------------------------------

CASES = [
    ("kd", lambda t, s, **kw: losses.KD(2.0, **kw)(t, s)),
    (
        "dkd",
        lambda t, s, **kw: losses.DKD(temperature=2.0, **kw)(
            t, s, labels=LABELS
        ),
    ),
    ("dist", lambda t, s, **kw: losses.DIST(temperature=2.0, **kw)(t, s)),
]


@pytest.mark.parametrize("name,loss", CASES, ids=[c[0] for c in CASES])
def test_standardized_loss_ignores_shift_and_scale(name, loss):
    t, s = logits(12), logits(13)
    value = float(loss(t, s, standardize=True))
    for student in (3 * s + 1, 0.25 * s - 7):
        np.testing.assert_allclose(
            float(loss(t, student, standardize=True)),
            value,
            rtol=1e-4,
            atol=1e-6,
        )
    np.testing.assert_allclose(
        float(loss(0.5 * t + 2, s, standardize=True)),
        value,
        rtol=1e-4,
        atol=1e-6,
    )
    # Without standardisation the scale matters.
    assert not np.isclose(float(loss(t, 3 * s + 1)), float(loss(t, s)))


# --- The switch ------------------------------------------------------------


def test_off_is_unchanged():
    t, s = logits(14), logits(15)
    for temperature in (1.0, 4.0):
        expected = values(losses.kd(t, s, temperature))
        np.testing.assert_array_equal(
            values(losses.kd(t, s, temperature, standardize=False)), expected
        )
        np.testing.assert_array_equal(
            float(losses.KD(temperature)(t, s)), np.float32(expected.mean())
        )
        np.testing.assert_allclose(
            expected, np_kd_loss(s, t, temperature, False), rtol=1e-4
        )
    expected = values(losses.dkd(t, s, LABELS, 1.0, 8.0, 4.0))
    np.testing.assert_array_equal(
        values(losses.dkd(t, s, LABELS, 1.0, 8.0, 4.0, standardize=False)),
        expected,
    )
    np.testing.assert_array_equal(
        float(losses.DKD()(t, s, labels=LABELS)), np.float32(expected.mean())
    )
    np.testing.assert_allclose(
        expected, np_dkd_loss(s, t, LABELS, 1.0, 8.0, 4.0, False), rtol=1e-4
    )
    expected = values(losses.dist(t, s))
    np.testing.assert_array_equal(
        values(losses.dist(t, s, standardize=False)), expected
    )
    np.testing.assert_array_equal(
        float(losses.DIST()(t, s)), np.float32(expected.mean())
    )
    np.testing.assert_allclose(
        expected.mean(), np_dist_loss(s, t, 1.0, 1.0, 1.0, False), rtol=1e-4
    )


@pytest.mark.parametrize(
    "loss_class,inputs",
    [
        (losses.KD, {}),
        (losses.DKD, {"labels": LABELS}),
        (losses.DIST, {}),
    ],
)
def test_round_trip(loss_class, inputs):
    assert loss_class().get_config()["standardize"] is False
    loss = loss_class(temperature=2.0, standardize=True)
    assert loss.standardize is True
    assert loss.get_config()["standardize"] is True
    assert_round_trip(loss, logits(16), logits(17), **inputs)
    restored = loss_class.from_config(loss.get_config())
    assert restored.standardize is True
    # A config saved before the switch existed loads with it off.
    config = loss_class().get_config()
    del config["standardize"]
    assert loss_class.from_config(config).standardize is False


@pytest.mark.parametrize("loss_class", [losses.KD, losses.DKD, losses.DIST])
@pytest.mark.parametrize("bad", [1, "yes", None])
def test_standardize_must_be_a_bool(loss_class, bad):
    with pytest.raises(TypeError, match="standardize must be True or False"):
        loss_class(standardize=bad)


def test_other_temperature_losses_are_not_given_the_keyword():
    loss = losses.SoftTargetCrossEntropy(2.0)
    assert loss.fn_keywords() == {"temperature": loss._temperature}
    assert "standardize" not in loss.get_config()
    assert "standardize" in losses.KD(standardize=True).fn_keywords()


def test_through_the_distiller():
    x, y = make_data(0, samples=32)
    keras.utils.set_random_seed(0)
    teacher, student = make_mlp(16, "teacher"), make_mlp(8, "student")
    distiller = kd_keras.Distiller(
        teacher,
        student,
        distillation_loss=losses.KD(2.0, standardize=True),
        alpha=0.0,
    )
    distiller.compile("sgd")
    logs = distiller.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    expected = np_kd_loss(
        student.predict(x, verbose=0), teacher.predict(x, verbose=0), 2.0, True
    ).mean()
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-4)
