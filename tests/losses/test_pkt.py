"""`PKT` against an independent numpy implementation of the released code,
the authors' `cosine_similarity_loss` (passalis/probabilistic_kt
`nn/pkt.py`, copied in RepDistiller's `distiller_zoo/PKT.py`)."""

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

from kd_keras.losses.pkt import PKT, pkt

# --- numpy references ---


def np_pkt_probabilities(net, eps):
    """One side of `cosine_similarity_loss`, line by line, in float64."""
    net = np.float64(net)
    net = net.reshape(net.shape[0], -1)
    net_norm = np.sqrt(np.sum(net**2, axis=1, keepdims=True))
    net = net / (net_norm + eps)
    net[net != net] = 0
    similarity = net @ net.T
    similarity = (similarity + 1.0) / 2.0
    return similarity / np.sum(similarity, axis=1, keepdims=True)


def np_pkt_terms(t, s, eps=1e-7):
    target = np_pkt_probabilities(t, eps)
    model = np_pkt_probabilities(s, eps)
    return target * np.log((target + eps) / (model + eps))


def np_pkt_reference(t, s, eps=1e-7):
    """`cosine_similarity_loss(output_net=s, target_net=t, eps)`."""
    return np.mean(np_pkt_terms(t, s, eps))


def np_pkt_rows(t, s, eps=1e-7):
    return np_pkt_terms(t, s, eps).mean(axis=1)


# --- tests ---


def test_pkt_hand_computed():
    # Teacher orthogonal: kernel [[1, 1/2], [1/2, 1]], rows [2/3, 1/3].
    # Student parallel: kernel all ones, rows [1/2, 1/2].
    teacher = [[1.0, 0.0], [0.0, 1.0]]
    student = [[1.0, 0.0], [2.0, 0.0]]
    kl = 2 / 3 * np.log(4 / 3) + 1 / 3 * np.log(2 / 3)
    np.testing.assert_allclose(
        values(pkt(teacher, student)), [kl / 2, kl / 2], rtol=1e-5
    )
    np.testing.assert_allclose(float(PKT()(teacher, student)), kl / 2, 1e-5)
    # Antipodal teacher: kernel [[1, 0], [0, 1]] (0 up to eps), rows
    # [1, 0]; a zero probability adds nothing. Student orthogonal.
    teacher = [[1.0, 0.0], [-1.0, 0.0]]
    student = [[1.0, 0.0], [0.0, 1.0]]
    np.testing.assert_allclose(
        values(pkt(teacher, student)), [np.log(3 / 2) / 2] * 2, rtol=1e-4
    )


@pytest.mark.parametrize("eps", [1e-7, 0.5])
@pytest.mark.parametrize(
    "t_shape,s_shape", [((6, 5), (6, 3)), ((5, 2, 2, 3), (5, 7))]
)
def test_pkt_matches_numpy(t_shape, s_shape, eps):
    t = features(1, t_shape)
    s = features(2, s_shape) + 0.3
    np.testing.assert_allclose(
        values(pkt(t, s, eps)), np_pkt_rows(t, s, eps), rtol=1e-4, atol=1e-7
    )
    np.testing.assert_allclose(
        float(PKT("t", "s", eps=eps)(t, s)),
        np_pkt_reference(t, s, eps),
        rtol=1e-4,
    )


def test_pkt_eps_reaches_the_norms():
    # Embeddings of norm ~eps: x / (||x|| + eps) is about x / (2 eps), far
    # from a unit vector, and the cosines change.
    t = features(3, (4, 3))
    s = 1e-3 * features(4, (4, 3))
    np.testing.assert_allclose(
        values(pkt(t, s, 1e-3)), np_pkt_rows(t, s, 1e-3), rtol=1e-4
    )
    assert not np.allclose(
        np_pkt_rows(t, s, 1e-3), np_pkt_rows(t, 1e3 * s, 1e-3), rtol=1e-2
    )


def test_pkt_sample_weight_weighs_rows():
    t, s = features(5, (5, 4)), features(6, (5, 6))
    weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0], "float32")
    np.testing.assert_allclose(
        float(PKT()(t, s, sample_weight=weights)),
        np.sum(np_pkt_rows(t, s) * weights) / 5,
        rtol=1e-4,
    )


def test_pkt_ignores_each_samples_scale():
    t, s = features(7, (6, 4)), features(8, (6, 5))
    scales = np.array([[0.01], [1.0], [3.0], [100.0], [0.5], [7.0]], "f4")
    np.testing.assert_allclose(values(pkt(t, scales * t)), 0.0, atol=1e-6)
    reference = values(pkt(t, s))
    np.testing.assert_allclose(
        values(pkt(t, scales * s)), reference, rtol=1e-4, atol=1e-7
    )
    np.testing.assert_allclose(
        values(pkt(scales * t, s)), reference, rtol=1e-4, atol=1e-7
    )
    # Not a rotation of one sample alone: the cosines change.
    moved = s.copy()
    moved[0] = -moved[0]
    assert np.abs(values(pkt(t, moved)) - reference).max() > 1e-3


def test_pkt_gradient():
    t, s = features(9, (4, 3)), features(10, (4, 5))
    got = student_gradient(lambda s: pkt(t, s), s)
    expected = numeric_gradient(lambda x: 4 * np_pkt_reference(t, x), s)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-6)


def test_pkt_batch_of_one_and_dead_features():
    loss = PKT()
    one = loss(features(11, (1, 4)), features(12, (1, 3)))
    assert float(one) == pytest.approx(0.0, abs=1e-12)
    # An all-zero embedding: cosine 0 with everything, the value of the
    # reference, and a finite gradient (the reference's is NaN there:
    # its square root's infinite gradient times 0).
    t, s = features(13, (3, 4)), features(14, (3, 2))
    s[1] = 0.0
    np.testing.assert_allclose(
        values(pkt(t, s)), np_pkt_rows(t, s), rtol=1e-4, atol=1e-8
    )
    gradient = student_gradient(lambda s: pkt(t, s), s)
    assert np.isfinite(gradient).all()
    zeros = np.zeros((3, 5), "float32")
    assert np.isfinite(student_gradient(lambda s: pkt(t, s), zeros)).all()
    assert float(loss(zeros, zeros)) == pytest.approx(0.0, abs=1e-7)


def test_pkt_unknown_batch_size_compiled():
    loss = PKT()

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 2, 2, 3]),
            tf.TensorSpec([None, 5]),
        ],
        jit_compile=True,
    )
    def compiled(t, s):
        return loss(t, s)

    t, s = features(15, (6, 2, 2, 3)), features(16, (6, 5))
    np.testing.assert_allclose(
        float(compiled(t, s)), np_pkt_reference(t, s), rtol=1e-4
    )
    assert float(compiled(t[:1], s[:1])) == pytest.approx(0.0, abs=1e-7)
    s[2] = 0.0
    assert np.isfinite(float(compiled(t, s)))


def test_pkt_defaults_and_round_trip():
    loss = PKT()
    assert (loss.name, loss.eps) == ("pkt", 1e-7)
    assert loss.teacher_layer is None and loss.student_layer is None
    assert not loss.softmax_based and not loss.requires_labels
    assert loss.make_adapter((64,), (32,)) is None
    loss = PKT("teacher_pool", "student_pool", eps=1e-3)
    config = keras.saving.serialize_keras_object(loss)
    assert config["config"]["eps"] == 1e-3
    t, s = features(17, (4, 3)), 1e-3 * features(18, (4, 2))
    assert_round_trip(loss, t, s)
    restored = keras.saving.deserialize_keras_object(config)
    assert (restored.teacher_layer, restored.eps) == ("teacher_pool", 1e-3)


@pytest.mark.parametrize("eps", [0.0, -1e-7])
def test_pkt_bad_eps(eps):
    with pytest.raises(ValueError, match="eps must be > 0"):
        PKT(eps=eps)
    with pytest.raises(TypeError, match="eps must be a number"):
        pkt([[1.0]], [[1.0]], eps="1e-7")
