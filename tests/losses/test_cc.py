"""`CC` against an independent numpy implementation of the released code,
RepDistiller's `distiller_zoo/CC.py` (`Correlation.forward`)."""

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

import kd_keras
from kd_keras.losses.cc import CC, cc

# --- numpy references ---


def np_cc_pairs(t, s):
    """`(delta[:-1] * delta[1:]).sum(1)`, pair by pair, in float64."""
    f_s = np.float64(s).reshape(len(s), -1)
    f_t = np.float64(t).reshape(len(t), -1)
    delta = np.abs(f_s - f_t)
    return np.array(
        [np.sum(delta[i] * delta[i + 1]) for i in range(len(delta) - 1)]
    )


def np_cc_reference(t, s):
    """`Correlation()(f_s, f_t)`: the mean over the consecutive pairs."""
    return np.mean(np_cc_pairs(t, s))


def np_cc_rows(t, s):
    """Half of each pair's term to each of its samples, times n / (n - 1)."""
    pairs = np_cc_pairs(t, s)
    n = len(pairs) + 1
    rows = np.zeros(n)
    for i, term in enumerate(pairs):
        rows[i] += term / 2
        rows[i + 1] += term / 2
    return rows * n / max(n - 1, 1)


# --- tests ---


def test_cc_hand_computed():
    # |errors| [1, 0], [0, 2], [0, 1]: pair terms 1*0 + 0*2 = 0 and
    # 0*0 + 2*1 = 2; the reference's mean over the two pairs is 1.
    teacher = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    student = [[2.0, 2.0], [3.0, 6.0], [5.0, 5.0]]
    np.testing.assert_allclose(values(cc(teacher, student)), [0, 1.5, 1.5])
    assert float(CC()(teacher, student)) == 1.0
    # Two samples: one pair, all of it on both samples; errors |.| count.
    teacher = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    student = [[1.0, -2.0, 3.0], [-4.0, 5.0, 6.0]]
    pair = 1 * 4 + 2 * 5 + 3 * 6
    np.testing.assert_allclose(values(cc(teacher, student)), [pair, pair])
    assert float(CC()(teacher, student)) == pair


@pytest.mark.parametrize(
    "shape", [(2, 5), (3, 4), (7, 5), (5, 2, 2, 3), (6, 3, 2)]
)
def test_cc_matches_numpy(shape):
    t, s = features(1, shape), features(2, shape)
    np.testing.assert_allclose(
        values(cc(t, s)), np_cc_rows(t, s), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        float(CC("t", "s")(t, s)), np_cc_reference(t, s), rtol=1e-5
    )


def test_cc_depends_on_the_order_of_the_batch():
    # Consecutive pairs, as in the reference: a shuffle changes the value,
    # reversing the batch does not.
    t, s = features(3, (6, 4)), features(4, (6, 4))
    order = np.array([3, 0, 5, 1, 4, 2])
    shuffled = float(CC()(t[order], s[order]))
    np.testing.assert_allclose(
        shuffled, np_cc_reference(t[order], s[order]), rtol=1e-5
    )
    assert abs(shuffled - np_cc_reference(t, s)) > 1e-2
    np.testing.assert_allclose(
        float(CC()(t[::-1], s[::-1])), np_cc_reference(t, s), rtol=1e-5
    )


def test_cc_sample_weight_weighs_pairs():
    t, s = features(5, (5, 4)), features(6, (5, 4))
    weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0], "float32")
    np.testing.assert_allclose(
        float(CC()(t, s, sample_weight=weights)),
        np.sum(np_cc_rows(t, s) * weights) / 5,
        rtol=1e-5,
    )
    # The pair (i, i + 1) counts with (w_i + w_{i+1}) / 2.
    pair_weights = (weights[:-1] + weights[1:]) / 2
    np.testing.assert_allclose(
        float(CC()(t, s, sample_weight=weights)),
        np.sum(np_cc_pairs(t, s) * pair_weights) / 4,
        rtol=1e-5,
    )


def test_cc_gradient():
    t, s = features(7, (4, 3)), features(8, (4, 3))
    got = student_gradient(lambda s: cc(t, s), s)
    expected = numeric_gradient(lambda x: 4 * np_cc_reference(t, x), s)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # The loss depends on s - t only: the teacher's gradient is opposite.
    got = student_gradient(lambda t: cc(t, s), t)
    np.testing.assert_allclose(got, -expected, rtol=1e-4, atol=1e-5)


def test_cc_batch_of_one_and_equal_embeddings():
    # No pair: zero, where the reference's mean over no pair is NaN.
    loss = CC()
    t, s = features(9, (1, 4)), features(10, (1, 4))
    assert float(loss(t, s)) == 0.0
    assert np.isfinite(student_gradient(lambda s: cc(t, s), s)).all()
    # Equal embeddings: zero, with a finite gradient at the kink of |.|.
    t = features(11, (4, 3))
    assert float(loss(t, t)) == 0.0
    assert np.isfinite(student_gradient(lambda s: cc(t, s), t.copy())).all()


def test_cc_unknown_batch_size_compiled():
    loss = CC()

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 2, 3]),
            tf.TensorSpec([None, 6]),
        ],
        jit_compile=True,
    )
    def compiled(t, s):
        return loss(t, s)

    t, s = features(12, (6, 2, 3)), features(13, (6, 6))
    for n in (6, 2):
        np.testing.assert_allclose(
            float(compiled(t[:n], s[:n])),
            np_cc_reference(t[:n], s[:n]),
            rtol=1e-5,
        )
    assert float(compiled(t[:1], s[:1])) == 0.0


def test_cc_needs_embeddings_of_the_same_size():
    with pytest.raises(ValueError, match="adapter"):
        CC("t", "s")(features(14, (3, 4)), features(15, (3, 5)))
    with pytest.raises(ValueError, match="same size"):
        cc(features(14, (3, 4)), features(15, (3, 5)))
    # Flattened sizes are compared: (2, 3) and (6,) are the same size.
    t, s = features(16, (3, 2, 3)), features(17, (3, 6))
    np.testing.assert_allclose(
        float(CC()(t, s)), np_cc_reference(t, s), rtol=1e-5
    )


def test_cc_adapter():
    loss = CC("teacher_pool", "student_pool")
    assert loss.make_adapter((8,), (8,)) is None
    assert loss.make_adapter((2, 3), (6,)) is None
    adapter = loss.make_adapter((8,), (4,))
    assert isinstance(adapter, keras.layers.Dense) and adapter.built
    assert adapter.name == "cc_adapter"
    assert adapter(np.zeros((2, 4), "f4")).shape == (2, 8)
    adapter = loss.make_adapter((8,), (2, 2, 3))
    assert adapter.built and adapter.name == "cc_adapter"
    assert adapter(np.zeros((2, 2, 2, 3), "f4")).shape == (2, 8)
    with pytest.raises(ValueError, match="number of features"):
        loss.make_adapter((None,), (4,))


def _mlp(units, name):
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(units, "relu", name=f"{name}_hidden")(inputs)
    outputs = keras.layers.Dense(3, name=f"{name}_logits")(hidden)
    return keras.Model(inputs, outputs, name=name)


def test_cc_trains_through_its_adapter_in_a_distiller():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(18).normal(size=(64, 6)).astype("float32")
    y = np.arange(64) % 3
    distiller = kd_keras.Distiller(
        _mlp(8, "teacher"),
        _mlp(4, "student"),
        distillation_loss=CC("teacher_hidden", "student_hidden"),
    )
    assert distiller.adapters[0].name == "cc_adapter"
    distiller.compile("adam")
    history = distiller.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_cc_defaults_and_round_trip():
    loss = CC()
    assert loss.name == "cc"
    assert loss.teacher_layer is None and loss.student_layer is None
    assert not loss.softmax_based and not loss.requires_labels
    loss = CC("teacher_embed", "student_embed", name="my_cc")
    config = keras.saving.serialize_keras_object(loss)
    assert config["config"]["student_layer"] == "student_embed"
    t, s = features(19, (4, 3)), features(20, (4, 3))
    assert_round_trip(loss, t, s)
    restored = keras.saving.deserialize_keras_object(config)
    assert (restored.teacher_layer, restored.name) == ("teacher_embed", "my_cc")
