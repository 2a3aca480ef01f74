"""`SP` against an independent numpy implementation of the released code,
RepDistiller's `distiller_zoo/SP.py` (`Similarity.similarity_loss`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from references import (
    assert_round_trip,
    features,
    numeric_gradient,
    student_gradient,
    values,
)

from kd_keras.losses.sp import SP, sp

# --- numpy references ---


def np_normalize_rows(g):
    """`torch.nn.functional.normalize(g)`: p=2, dim=1, eps=1e-12."""
    norms = np.sqrt((g**2).sum(axis=1, keepdims=True))
    return g / np.maximum(norms, 1e-12)


def np_sp_gram(f):
    f = np.float64(f)
    f = f.reshape(f.shape[0], -1)  # f.view(bsz, -1)
    return np_normalize_rows(f @ f.T)  # torch.mm(f, torch.t(f))


def np_sp_reference(t, s):
    """`similarity_loss(f_s, f_t)`: the released code's scalar."""
    bsz = np.shape(t)[0]
    g_diff = np_sp_gram(t) - np_sp_gram(s)
    return (g_diff * g_diff).reshape(-1, 1).sum(0)[0] / (bsz * bsz)


def np_sp_rows(t, s):
    """Row `i` of the squared difference, over `j`, divided by `bsz`."""
    g_diff = np_sp_gram(t) - np_sp_gram(s)
    return (g_diff**2).sum(axis=1) / np.shape(t)[0]


# --- tests ---


def test_sp_hand_computed():
    # Teacher orthogonal: similarities I. Student two equal samples: both
    # rows [1, 1] / sqrt(2). Each row differs by (1 - b, -b), b = 1/sqrt(2).
    teacher = [[1.0, 0.0], [0.0, 1.0]]
    student = [[1.0, 0.0], [1.0, 0.0]]
    b = 1 / np.sqrt(2)
    row = ((1 - b) ** 2 + b**2) / 2
    np.testing.assert_allclose(
        values(sp(teacher, student)), [row, row], rtol=1e-6
    )
    np.testing.assert_allclose(float(SP()(teacher, student)), 1 - b, 1e-6)
    # Unequal rows: the student's Gram matrix [[1, 2], [2, 5]] normalised
    # row by row, against the teacher's identity.
    student = [[1.0, 0.0], [2.0, 1.0]]
    a, c = np.array([1.0, 2.0]) / np.sqrt(5), np.array([2.0, 5.0])
    c = c / np.linalg.norm(c)
    expected = [
        np.sum((np.array([1.0, 0.0]) - a) ** 2) / 2,
        np.sum((np.array([0.0, 1.0]) - c) ** 2) / 2,
    ]
    np.testing.assert_allclose(
        values(sp(teacher, student)), expected, rtol=1e-6
    )


@pytest.mark.parametrize(
    "t_shape,s_shape", [((6, 5), (6, 3)), ((5, 2, 2, 3), (5, 4, 4, 1))]
)
def test_sp_matches_numpy(t_shape, s_shape):
    t = features(1, t_shape)
    # Features of very different scales per sample, so that the row
    # normalisation matters.
    scales = np.array([0.1, 1, 10, 2, 0.5, 3])[: s_shape[0]]
    s = features(2, s_shape) * scales.reshape(-1, *[1] * (len(s_shape) - 1))
    np.testing.assert_allclose(
        values(sp(t, s)), np_sp_rows(t, s), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        float(SP("t", "s")(t, s)), np_sp_reference(t, s), rtol=1e-5
    )


def test_sp_sample_weight_weighs_rows():
    t, s = features(3, (5, 4)), features(4, (5, 6))
    weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0], "float32")
    np.testing.assert_allclose(
        float(SP()(t, s, sample_weight=weights)),
        np.sum(np_sp_rows(t, s) * weights) / 5,
        rtol=1e-5,
    )


def test_sp_invariances():
    # Gram matrices ignore a common scale and an orthogonal map of the
    # features; the row normalisation ignores the scale of the batch.
    t = features(5, (6, 4))
    q, _ = np.linalg.qr(features(6, (4, 4)).astype("float64"))
    reference = values(sp(t, features(7, (6, 3))))
    for s in (3.0 * t, 0.01 * t, t @ q.astype("float32")):
        np.testing.assert_allclose(values(sp(t, s)), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        values(sp(100.0 * t, features(7, (6, 3)))),
        reference,
        rtol=1e-4,
        atol=1e-7,
    )
    # Not a translation: the Gram matrix changes.
    assert float(np.sum(values(sp(t, t + 1.0)))) > 1e-3


def test_sp_gradient():
    t, s = features(8, (4, 3)), features(9, (4, 5))
    got = student_gradient(lambda s: sp(t, s), s)
    # sum over the batch of the rows = bsz * reference.
    expected = numeric_gradient(lambda x: 4 * np_sp_reference(t, x), s)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)


def test_sp_batch_of_one_and_dead_features():
    loss = SP()
    one = loss(features(10, (1, 4)), features(11, (1, 3)))
    assert float(one) == pytest.approx(0.0, abs=1e-12)
    # An all-zero sample (a dead ReLU map): a zero row, a finite gradient.
    t = features(12, (3, 2, 2, 4))
    s = features(13, (3, 2, 2, 2))
    s[1] = 0.0
    np.testing.assert_allclose(
        values(sp(t, s)), np_sp_rows(t, s), rtol=1e-5, atol=1e-7
    )
    gradient = student_gradient(lambda s: sp(t, s), s)
    assert np.isfinite(gradient).all()
    zeros = np.zeros((3, 5), "float32")
    gradient = student_gradient(lambda s: sp(t, s), zeros)
    assert np.isfinite(gradient).all()
    assert np.isfinite(float(loss(zeros, zeros)))


def test_sp_unknown_batch_size_compiled():
    loss = SP()

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 2, 2, 3]),
            tf.TensorSpec([None, 5]),
        ],
        jit_compile=True,
    )
    def compiled(t, s):
        return loss(t, s)

    t, s = features(14, (6, 2, 2, 3)), features(15, (6, 5))
    np.testing.assert_allclose(
        float(compiled(t, s)), np_sp_reference(t, s), rtol=1e-5
    )
    assert float(compiled(t[:1], s[:1])) == pytest.approx(0.0, abs=1e-12)


def test_sp_defaults_and_round_trip():
    loss = SP()
    assert loss.name == "sp"
    assert loss.teacher_layer is None and loss.student_layer is None
    assert not loss.softmax_based and not loss.requires_labels
    assert loss.make_adapter((4, 4, 8), (2, 2, 3)) is None
    loss = SP("teacher_block", "student_block", name="my_sp")
    config = keras.saving.serialize_keras_object(loss)
    assert config["config"]["teacher_layer"] == "teacher_block"
    t, s = features(16, (4, 3)), features(17, (4, 2))
    assert_round_trip(loss, t, s)
    restored = keras.saving.deserialize_keras_object(config)
    assert (restored.student_layer, restored.name) == ("student_block", "my_sp")
