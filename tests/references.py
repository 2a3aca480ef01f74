"""Independent numpy implementations of the formulas, in float64, and the
helpers that compare a loss with them.

Written from the papers and the authors' released code, never from
kd_keras' own: a test compares kd_keras with these.
"""

import keras
import numpy as np
import tensorflow as tf


def np_softmax(z, temperature=1.0):
    z = np.asarray(z, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_kd(t, s, temperature):
    p, q = np_softmax(t, temperature), np_softmax(s, temperature)
    return temperature**2 * np.sum(p * np.log(p / q), axis=-1)


def np_kd_logit_gradient(t, s, temperature):
    """Gradient of `np_kd` with respect to the student logits `s`, by hand.

    `d/ds [T**2 KL(p || softmax(s / T))] = T * (softmax(s / T) - p)`.
    """
    return temperature * (
        np_softmax(s, temperature) - np_softmax(t, temperature)
    )


def np_cross_entropy_logit_gradient(y, s):
    """Gradient of the sparse cross-entropy from logits `s`, by hand."""
    return np_softmax(s) - np.eye(s.shape[-1])[y]


def np_soft_ce(t, s, temperature):
    p, q = np_softmax(t, temperature), np_softmax(s, temperature)
    return -(temperature**2) * np.sum(p * np.log(q), axis=-1)


def logits(seed, shape=(5, 7)):
    rng = np.random.default_rng(seed)
    return (3 * rng.normal(size=shape)).astype("float32")


def values(x):
    return keras.ops.convert_to_numpy(x)


def student_gradient(fn, student):
    """Gradient of `sum(fn(student))` w.r.t. the student logits."""
    student = tf.Variable(student)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(fn(student))
    return tape.gradient(total, student).numpy()


def numeric_gradient(f, x, step=1e-6):
    """Central finite differences of the scalar numpy function `f` at `x`."""
    x = np.asarray(x, dtype=np.float64)
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        shift = np.zeros_like(x)
        shift[index] = step
        gradient[index] = (f(x + shift) - f(x - shift)) / (2 * step)
    return gradient


def assert_round_trip(loss, *inputs, **kwargs):
    """Serializes `loss`, restores it, and compares configs and values."""
    config = keras.saving.serialize_keras_object(loss)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    np.testing.assert_allclose(
        float(restored(*inputs, **kwargs)), float(loss(*inputs, **kwargs))
    )


def np_dkd_terms(t, s, y, temperature):
    """(TCKD, NCKD) of Zhao et al., eqs. (1)-(4), times T**2."""
    p, q = np_softmax(t, temperature), np_softmax(s, temperature)
    rows = np.arange(len(y))
    p_t, q_t = p[rows, y], q[rows, y]
    tckd = p_t * np.log(p_t / q_t) + (1 - p_t) * np.log((1 - p_t) / (1 - q_t))
    others = np.ones(p.shape, dtype=bool)
    others[rows, y] = False
    shape = (len(y), p.shape[-1] - 1)
    p_hat = p[others].reshape(shape) / (1 - p_t)[:, None]
    q_hat = q[others].reshape(shape) / (1 - q_t)[:, None]
    nckd = np.sum(p_hat * np.log(p_hat / q_hat), axis=-1)
    return temperature**2 * tckd, temperature**2 * nckd


def np_dkd(t, s, y, tckd_weight, nckd_weight, temperature):
    tckd, nckd = np_dkd_terms(t, s, y, temperature)
    return tckd_weight * tckd + nckd_weight * nckd


def label_formats(labels, classes):
    """Labels in every form a loss that reads them must read alike:
    indices (int64, int32), a column of indices, one-hot rows and smoothed
    one-hot rows (whose largest entry is the target)."""
    one_hot = np.eye(classes)[labels]
    return [
        labels,
        labels.astype("int32"),
        labels[:, None],
        one_hot,
        0.9 * one_hot + 0.1 / classes,
    ]


def np_log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def features(seed, shape):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape).astype("float32")


def np_fitnet(t, s):
    t, s = np.float64(t), np.float64(s)
    return ((s - t) ** 2).reshape(len(t), -1).mean(axis=1)


def np_attention(x, p):
    """The paper's F_sum^p (a sum over channels), L2-normalised."""
    q = (np.abs(np.float64(x)) ** p).sum(axis=-1).reshape(len(x), -1)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def np_at(t, s, p):
    return ((np_attention(s, p) - np_attention(t, p)) ** 2).mean(axis=1)


def expected_loss(teacher, student, x, y, alpha, temperature):
    """The combined loss recomputed in numpy from the two models' logits."""
    t = teacher.predict(x, verbose=0)
    s = student.predict(x, verbose=0)
    hard = -np.log(np_softmax(s)[np.arange(len(y)), y])
    soft = np_kd(t, s, temperature)
    return (
        alpha * hard.mean() + (1 - alpha) * soft.mean(),
        hard.mean(),
        (soft.mean()),
    )
