"""`kd_keras.views`: a model's activation, logits and named layers, read
the way the losses read them."""

import keras
import numpy as np
import pytest
from conftest import FEATURES, make_data, make_mlp
from references import values

from kd_keras import views


def dense_head(activation, name="model"):
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(6, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(3, activation=activation, name="head")(hidden)
    return keras.Model(inputs, outputs, name=name)


def logits_by_hand(model, x):
    """What the head computes before its activation, in numpy."""
    w1, b1, w2, b2 = model.get_weights()
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2


def separate_softmax_layer():
    inputs = keras.Input((FEATURES,))
    logits = keras.layers.Dense(3, name="logits")(inputs)
    return keras.Model(inputs, keras.layers.Softmax()(logits))


def softmax_operation():
    inputs = keras.Input((FEATURES,))
    logits = keras.layers.Dense(3, name="logits")(inputs)
    return keras.Model(inputs, keras.ops.softmax(logits))


def nested_softmax():
    inputs = keras.Input((FEATURES,))
    return keras.Model(inputs, dense_head("softmax", "inner")(inputs))


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda: dense_head(None), None),
        (lambda: dense_head("softmax"), "softmax"),
        (lambda: dense_head("sigmoid"), "sigmoid"),
        (lambda: dense_head("relu"), None),
        (separate_softmax_layer, "softmax"),
        (softmax_operation, "softmax"),
        (nested_softmax, "softmax"),
    ],
    ids=[
        "logits",
        "dense_softmax",
        "dense_sigmoid",
        "relu",
        "softmax_layer",
        "softmax_op",
        "nested",
    ],
)
def test_output_activation(build, expected):
    assert views.output_activation(build()) == expected


def test_to_logits_inverts_softmax_and_sigmoid():
    p = np.array([[0.5, 0.25, 0.25]], "float32")
    logits = values(views.to_logits(p, "softmax"))
    np.testing.assert_allclose(logits, np.log(p), rtol=1e-6)
    q = np.array([[0.8, 0.5]], "float32")
    np.testing.assert_allclose(
        values(views.to_logits(q, "sigmoid")), [[np.log(4.0), 0.0]], atol=1e-6
    )
    # An exact 0 or 1 is clipped to float32's smallest normal number.
    edges = values(
        views.to_logits(np.array([[0.0, 1.0]], "float32"), "sigmoid")
    )
    assert np.isfinite(edges).all() and edges[0, 0] < -80 < 80 < edges[0, 1]
    z = np.array([[3.0, -1.0]], "float32")
    np.testing.assert_array_equal(values(views.to_logits(z, None)), z)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_the_view_reads_the_logits_in_the_graph(activation):
    """A confident softmax's small probabilities underflow float32; the
    view reads the logits before the activation instead, exactly."""
    model = dense_head(activation)
    head = model.get_layer("head")
    kernel, bias = head.get_weights()
    head.set_weights([50 * kernel, bias])
    x, _ = make_data(samples=5)
    outputs = views.ModelView(model, [], "teacher")(x)
    np.testing.assert_allclose(
        values(outputs.logits), logits_by_hand(model, x), rtol=1e-5, atol=1e-4
    )
    np.testing.assert_array_equal(values(outputs.output), values(model(x)))
    assert outputs.features == []


def test_a_subclassed_model_is_read_through_its_outputs():
    class Probabilities(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.dense(x)

    model = Probabilities()
    x, _ = make_data(samples=4)
    model(x)
    outputs = views.ModelView(model, [], "student")(x)
    np.testing.assert_allclose(
        values(outputs.logits), np.log(values(model(x))), rtol=1e-6
    )
    with pytest.raises(TypeError, match="subclassed Probabilities"):
        views.ModelView(model, ["dense"], "student")


def test_named_layers_are_returned_in_order():
    model = make_mlp(16, "teacher")
    names = [model.layers[1].name]
    x, _ = make_data(samples=4)
    outputs = views.ModelView(model, names, "teacher")(x)
    w1, b1, *_ = model.get_weights()
    np.testing.assert_allclose(
        values(outputs.features[0]), np.maximum(x @ w1 + b1, 0), rtol=1e-5
    )
    assert views.feature_shape(model, names[0]) == (16,)
    assert views.feature_shape(model, None) == (4,)


def test_an_unknown_layer_is_named_with_the_model_layers():
    model = dense_head(None, "teacher")
    with pytest.raises(
        ValueError,
        match=r"The teacher 'teacher' has no layer named 'nope'\. Its "
        r"layers: input_layer.*, hidden, head\.",
    ):
        views.layer_output(model, "nope", "teacher")


def test_a_model_with_two_outputs_is_refused():
    inputs = keras.Input((FEATURES,))
    model = keras.Model(
        inputs, [keras.layers.Dense(2)(inputs), keras.layers.Dense(2)(inputs)]
    )
    with pytest.raises(ValueError, match="The student must have one output"):
        views.output_shape(model, "student")


def test_layers_of_walks_nested_models_in_order():
    model = nested_softmax()
    names = [layer.name for layer in views.layers_of(model)]
    assert names[1:] == ["inner", names[2], "hidden", "head"]
