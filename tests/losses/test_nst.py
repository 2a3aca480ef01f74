"""`NST` against a numpy transcription of RepDistiller's released code.

The reference below follows `distiller_zoo/NST.py` of HobbitLong/RepDistiller
(commit b84f547c5db6a35318d4671d7d5c4de74c822403), `NSTLoss.nst_loss` with
`full_loss=True`, line by line on NCHW arrays: the Keras features
`(N, H, W, C)` are transposed to `(N, C, H, W)` first. It returns the batch
mean, as the code does; `np_nst` applies it to each sample alone.
"""

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
from kd_keras.losses.nst import NST, nst

# --- The reference, from the released code -------------------------------


def np_adaptive_avg_pool2d(x, out_h, out_w):
    """`F.adaptive_avg_pool2d(x, (out_h, out_w))` on NCHW: output `i` of an
    axis of size `n` averages inputs `floor(i n / out)` to
    `ceil((i + 1) n / out) - 1`."""
    h, w = x.shape[2:]
    out = np.zeros((*x.shape[:2], out_h, out_w))
    for i in range(out_h):
        h0, h1 = (i * h) // out_h, -(-(i + 1) * h // out_h)
        for j in range(out_w):
            w0, w1 = (j * w) // out_w, -(-(j + 1) * w // out_w)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


def np_normalize(x, dim):
    """`F.normalize(x, dim=dim)`: p=2, eps=1e-12."""
    norm = np.sqrt((x**2).sum(axis=dim, keepdims=True))
    return x / np.maximum(norm, 1e-12)


def np_poly_kernel(a, b):
    a = a[:, None]  # a.unsqueeze(1)
    b = b[:, :, None]  # b.unsqueeze(2)
    return (a * b).sum(-1) ** 2


def np_nst_loss(f_s, f_t):
    """`NSTLoss.nst_loss(f_s, f_t)`, NCHW, float64; the student first."""
    s_h, t_h = f_s.shape[2], f_t.shape[2]
    if s_h > t_h:
        f_s = np_adaptive_avg_pool2d(f_s, t_h, t_h)
    elif s_h < t_h:
        f_t = np_adaptive_avg_pool2d(f_t, s_h, s_h)
    f_s = f_s.reshape(f_s.shape[0], f_s.shape[1], -1)
    f_s = np_normalize(f_s, dim=2)
    f_t = f_t.reshape(f_t.shape[0], f_t.shape[1], -1)
    f_t = np_normalize(f_t, dim=2)
    return (
        np_poly_kernel(f_t, f_t).mean()
        + np_poly_kernel(f_s, f_s).mean()
        - 2 * np_poly_kernel(f_s, f_t).mean()
    )


def nchw(x):
    return np.transpose(np.float64(x), (0, 3, 1, 2))


def np_nst(teacher, student):
    """Per sample: the reference on each sample alone, NHWC inputs."""
    return np.array(
        [
            np_nst_loss(nchw(student[i : i + 1]), nchw(teacher[i : i + 1]))
            for i in range(len(teacher))
        ]
    )


def np_nst_batch(teacher, student):
    """The reference on the whole batch, NHWC inputs: its batch mean."""
    return np_nst_loss(nchw(student), nchw(teacher))


def relu_features(seed, shape):
    return np.maximum(features(seed, shape), 0.0)


# --- By hand ---------------------------------------------------------------


def test_hand_computed():
    # One channel each, 1x2 positions: maps (3, 4) / 5 and (4, 3) / 5.
    # 1 + 1 - 2 * (0.48 + 0.48)**2
    got = nst([[[[3.0], [4.0]]]], [[[[4.0], [3.0]]]])
    np.testing.assert_allclose(values(got), [2 - 2 * 0.96**2], rtol=1e-6)
    # Orthogonal maps: 1 + 1 - 0.
    got = nst([[[[1.0], [0.0]]]], [[[[0.0], [5.0]]]])
    np.testing.assert_allclose(values(got), [2.0], rtol=1e-6)
    # Teacher channels e1, e2; student one channel (1, 1) / sqrt(2):
    # k_tt = mean([[1, 0], [0, 1]]) = 1/2, k_ss = 1, k_st = mean(1/2, 1/2).
    teacher = [[[[1.0, 0.0], [0.0, 1.0]]]]
    student = [[[[2.0], [2.0]]]]
    np.testing.assert_allclose(values(nst(teacher, student)), [0.5], rtol=1e-6)
    # The same, the other way round: MMD is symmetric.
    np.testing.assert_allclose(values(nst(student, teacher)), [0.5], rtol=1e-6)


def test_only_the_distribution_of_the_maps_counts():
    t = relu_features(0, (3, 4, 4, 3))
    zero = np.zeros(3)
    # The same maps in another order, scaled per channel, or repeated.
    for s in (
        t[..., ::-1],
        t * np.array([0.5, 2.0, 7.0], "float32"),
        np.concatenate([t, t], axis=-1),
    ):
        np.testing.assert_allclose(values(nst(t, s)), zero, atol=1e-6)
    # Different maps are not.
    assert (values(nst(t, relu_features(1, (3, 4, 4, 3)))) > 1e-3).all()


def test_an_upsampled_student_pools_back_to_the_teacher():
    t = relu_features(2, (2, 3, 3, 4))
    s = np.repeat(np.repeat(t, 2, axis=1), 2, axis=2)  # 6x6, 2x2 blocks
    np.testing.assert_allclose(values(nst(t, s)), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(values(nst(s, t)), [0.0, 0.0], atol=1e-6)


# --- Against the reference -------------------------------------------------


@pytest.mark.parametrize("make", [features, relu_features])
@pytest.mark.parametrize(
    "t_shape,s_shape",
    [
        ((4, 5, 5, 6), (4, 5, 5, 3)),  # the same size
        ((3, 8, 8, 4), (3, 4, 4, 2)),  # the student pools nothing
        ((3, 4, 4, 4), (3, 8, 8, 2)),  # the student is pooled
        ((3, 3, 3, 2), (3, 5, 5, 3)),  # 5 -> 3: overlapping bins
        ((2, 7, 7, 3), (2, 3, 3, 5)),  # 7 -> 3
    ],
)
def test_matches_the_reference(make, t_shape, s_shape):
    t, s = make(3, t_shape), make(4, s_shape)
    np.testing.assert_allclose(
        values(nst(t, s)), np_nst(t, s), rtol=1e-4, atol=1e-6
    )
    loss = NST("t", "s")
    np.testing.assert_allclose(
        float(loss(t, s)), np_nst_batch(t, s), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize(
    "t_shape,s_shape",
    [((2, 4, 6, 3), (2, 6, 4, 2)), ((2, 4, 6, 3), (2, 4, 3, 2))],
)
def test_non_square_maps_pool_each_axis_to_the_smaller_size(t_shape, s_shape):
    # The reference assumes square maps; here each axis is pooled to the
    # smaller size, then the reference compares maps of the same size.
    t, s = features(5, t_shape), features(6, s_shape)
    h, w = min(t_shape[1], s_shape[1]), min(t_shape[2], s_shape[2])
    pooled_t = np_adaptive_avg_pool2d(nchw(t), h, w)
    pooled_s = np_adaptive_avg_pool2d(nchw(s), h, w)
    expected = [
        np_nst_loss(pooled_s[i : i + 1], pooled_t[i : i + 1])
        for i in range(len(t))
    ]
    np.testing.assert_allclose(values(nst(t, s)), expected, rtol=1e-4)


@pytest.mark.parametrize(
    "t_shape,s_shape",
    [((2, 3, 3, 3), (2, 3, 3, 2)), ((2, 2, 2, 3), (2, 4, 4, 2))],
)
def test_gradient_matches_the_reference(t_shape, s_shape):
    t, s = relu_features(7, t_shape), features(8, s_shape)
    got = student_gradient(lambda x: nst(t, x), s)
    expected = numeric_gradient(lambda x: np_nst(t, x).sum(), s)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # The class's gradient is the batch mean's.
    got = student_gradient(lambda x: NST("t", "s")(t, x), s)
    expected = numeric_gradient(lambda x: np_nst_batch(t, x), s)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_dead_channels_are_zero_maps_with_a_finite_gradient():
    t = relu_features(9, (2, 3, 3, 3))
    s = relu_features(10, (2, 3, 3, 4))
    s[..., 1] = 0.0
    t[0, ..., 0] = 0.0
    np.testing.assert_allclose(
        values(nst(t, s)), np_nst(t, s), rtol=1e-4, atol=1e-6
    )
    gradient = student_gradient(lambda x: nst(t, x), np.zeros_like(s))
    assert np.isfinite(gradient).all()
    assert np.isfinite(values(nst(np.zeros_like(t), np.zeros_like(s)))).all()


@pytest.mark.parametrize("jit_compile", [False, True])
def test_unknown_spatial_sizes_in_a_compiled_function(jit_compile):
    t, s = features(11, (2, 4, 6, 3)), features(12, (2, 8, 3, 2))
    compiled = tf.function(
        nst,
        input_signature=[
            tf.TensorSpec((None, None, None, 3)),
            tf.TensorSpec((None, None, None, 2)),
        ],
        jit_compile=jit_compile,
    )
    np.testing.assert_allclose(
        values(compiled(t, s)), values(nst(t, s)), rtol=1e-5, atol=1e-7
    )
    same = features(13, (2, 4, 6, 2))
    np.testing.assert_allclose(
        values(compiled(t, same)), np_nst(t, same), rtol=1e-4, atol=1e-6
    )


def test_float16_features_are_computed_in_float32():
    t, s = features(14, (2, 3, 3, 4)), features(15, (2, 3, 3, 2))
    got = NST("t", "s")(t.astype("float16"), s.astype("float16"))
    assert got.dtype == "float32"
    expected = np_nst_batch(
        t.astype("float16").astype("float32"),
        s.astype("float16").astype("float32"),
    )
    np.testing.assert_allclose(float(got), expected, rtol=1e-4)


# --- The loss object -------------------------------------------------------


def test_reductions_and_sample_weight():
    t, s = features(16, (3, 4, 4, 3)), features(17, (3, 4, 4, 2))
    per_sample = np_nst(t, s)
    np.testing.assert_allclose(
        float(NST("t", "s", reduction="sum")(t, s)),
        per_sample.sum(),
        rtol=1e-4,
    )
    weights = np.array([1.0, 0.0, 2.0], "float32")
    np.testing.assert_allclose(
        float(NST("t", "s")(t, s, sample_weight=weights)),
        (per_sample * weights).sum() / 3,
        rtol=1e-4,
    )


def test_round_trip():
    loss = NST("teacher_block", "student_block", reduction="sum")
    config = loss.get_config()
    assert config["teacher_layer"] == "teacher_block"
    assert config["student_layer"] == "student_block"
    assert config["reduction"] == "sum"
    assert_round_trip(
        loss, features(18, (2, 4, 4, 3)), features(19, (2, 2, 2, 5))
    )


def test_defaults():
    loss = NST("t", "s")
    assert loss.name == "nst"
    assert loss.reduction == "sum_over_batch_size"
    assert not loss.softmax_based and not loss.requires_labels


def test_shape_errors():
    loss = NST("t_block", "s_block")
    with pytest.raises(ValueError, match="image features") as error:
        loss.make_adapter((16,), (8, 8, 4))
    message = str(error.value)
    assert "'t_block'" in message and "'s_block'" in message
    assert "(None, 16)" in message and "(None, 8, 8, 4)" in message
    with pytest.raises(ValueError, match="image features"):
        loss.make_adapter((8, 8, 4), (8, 4))
    with pytest.raises(ValueError, match="image features"):
        loss(features(0, (2, 4)), features(1, (2, 4)))
    with pytest.raises(ValueError, match="nst needs image features"):
        nst(features(0, (2, 3, 4)), features(1, (2, 3, 4)))
    # Different channels and different spatial sizes need no adapter.
    assert loss.make_adapter((8, 8, 16), (8, 8, 4)) is None
    assert loss.make_adapter((8, 8, 16), (4, 4, 4)) is None
    assert loss.make_adapter((None, None, 16), (None, None, 4)) is None


def test_bad_layer_names():
    with pytest.raises(TypeError, match="teacher_layer must be a layer name"):
        NST(3, "s")


# --- Through the Distiller -------------------------------------------------


def cnn(filters, strides, prefix):
    inputs = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(
        filters, 3, strides, padding="same", name=f"{prefix}_conv"
    )(inputs)
    h = keras.layers.ReLU(name=f"{prefix}_relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(4, name=f"{prefix}_logits")(h)
    return keras.Model(inputs, outputs, name=prefix)


def test_through_the_distiller():
    rng = np.random.default_rng(20)
    x = rng.normal(size=(32, 6, 6, 2)).astype("float32")
    y = rng.integers(0, 4, 32)
    keras.utils.set_random_seed(0)
    # A 6x6 teacher map and a 3x3 student map: the teacher's is pooled.
    teacher, student = cnn(8, 1, "teacher"), cnn(4, 2, "student")
    distiller = kd_keras.Distiller(
        teacher,
        student,
        distillation_loss=NST("teacher_relu", "student_relu"),
        alpha=0.0,
    )
    distiller.compile("sgd")
    logs = distiller.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)

    def intermediate(model, name):
        layer = model.get_layer(name)
        return keras.Model(model.inputs, layer.output).predict(x, verbose=0)

    expected = np_nst_batch(
        intermediate(teacher, "teacher_relu"),
        intermediate(student, "student_relu"),
    )
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-4)
