"""`kd_keras.views`: a model's activation, logits and named layers, read
the way the losses read them."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import FEATURES, augmented_mobilenet, make_data, make_mlp
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


# Layers of nested models, named by their paths ("inner/dense").


def tensor(samples):
    """`make_data`'s inputs, as a tensor: Keras warns when a NumPy array
    is given to a model whose inputs are a list (the views')."""
    return tf.constant(make_data(samples=samples)[0])


def inner_model(kind):
    """Dense "dense" (relu) then Dense "head", as a functional or a
    Sequential model called "inner"."""
    layers = [
        keras.layers.Dense(6, activation="relu", name="dense"),
        keras.layers.Dense(4, name="head"),
    ]
    if kind == "sequential":
        return keras.Sequential(layers, name="inner")
    inputs = keras.Input((5,))
    return keras.Model(inputs, layers[1](layers[0](inputs)), name="inner")


def nested_model(inner, outer="functional", activation=None):
    """Dense "pre" -> `inner` -> Dense "out", as a functional or a
    Sequential model called "model"."""
    pre = keras.layers.Dense(5, name="pre")
    out = keras.layers.Dense(3, activation=activation, name="out")
    if outer == "sequential":
        return keras.Sequential(
            [keras.Input((FEATURES,)), pre, inner, out], name="model"
        )
    inputs = keras.Input((FEATURES,), name="x")
    return keras.Model(inputs, out(inner(pre(inputs))), name="model")


def nested_by_hand(model, x):
    """`(pre, inner/dense, inner, out before its activation)`, in numpy."""
    w_pre, b_pre, w1, b1, w2, b2, w_out, b_out = model.get_weights()
    pre = values(x) @ w_pre + b_pre
    dense = np.maximum(pre @ w1 + b1, 0)
    inner = dense @ w2 + b2
    return pre, dense, inner, inner @ w_out + b_out


@pytest.mark.parametrize("outer", ["functional", "sequential"])
@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_layers_of_a_nested_model_are_read_by_path(kind, outer):
    model = nested_model(inner_model(kind), outer)
    weights, layers = len(model.weights), [layer.name for layer in model.layers]
    names = ["inner/dense", "pre", "inner", "inner/head", "inner/dense"]
    x = tensor(samples=5)
    outputs = views.ModelView(model, names, "student")(x)
    pre, dense, inner, out = nested_by_hand(model, x)
    for feature, expected in zip(
        outputs.features, [dense, pre, inner, inner, dense], strict=True
    ):
        np.testing.assert_allclose(values(feature), expected, rtol=1e-5)
    np.testing.assert_allclose(values(outputs.output), out, rtol=1e-5)
    np.testing.assert_allclose(values(outputs.logits), out, rtol=1e-5)
    assert views.feature_shape(model, "inner/dense") == (6,)
    assert views.feature_shape(model, "inner") == (4,)
    assert tuple(views.layer_output(model, "inner/head", "student").shape) == (
        None,
        4,
    )
    # Nothing was added to the model.
    assert len(model.weights) == weights
    assert [layer.name for layer in model.layers] == layers


@pytest.mark.parametrize("names", [["pre"], ["inner/dense"]])
def test_a_model_built_with_a_list_of_one_output_is_read(names):
    inputs = keras.Input((FEATURES,))
    pre = keras.layers.Dense(5, name="pre")(inputs)
    logits = keras.layers.Dense(3)(inner_model("functional")(pre))
    model = keras.Model([inputs], [keras.layers.Softmax()(logits)])
    x = tensor(samples=4)
    outputs = views.ModelView(model, names, "student")(x)
    np.testing.assert_allclose(
        values(outputs.output), values(model(x)), rtol=1e-6
    )
    expected = keras.Model(inputs, logits)(x)
    np.testing.assert_allclose(
        values(outputs.logits), values(expected), rtol=1e-5
    )


def test_paths_go_down_any_depth():
    inputs = keras.Input((5,))
    middle = keras.Model(inputs, inner_model("functional")(inputs), name="b")
    inputs = keras.Input((5,))
    model = nested_model(keras.Model(inputs, middle(inputs), name="inner"))
    # model -> inner (functional) -> b (functional) -> inner (functional).
    assert model.get_layer("inner").get_layer("b").get_layer("inner")
    x = tensor(samples=5)
    outputs = views.ModelView(
        model, ["inner/b/inner/dense", "inner/b"], "teacher"
    )(x)
    _, dense, inner, out = nested_by_hand(model, x)
    np.testing.assert_allclose(values(outputs.features[0]), dense, rtol=1e-5)
    np.testing.assert_allclose(values(outputs.features[1]), inner, rtol=1e-5)
    np.testing.assert_allclose(values(outputs.output), out, rtol=1e-5)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_the_graph_logits_are_read_with_paths(activation):
    model = nested_model(inner_model("functional"), activation=activation)
    out = model.get_layer("out")
    kernel, bias = out.get_weights()
    out.set_weights([50 * kernel, bias])
    x = tensor(samples=5)
    view = views.ModelView(model, ["inner/dense"], "teacher")
    outputs = view(x)
    _, dense, _, logits = nested_by_hand(model, x)
    assert view._reads_logits
    np.testing.assert_allclose(
        values(outputs.logits), logits, rtol=1e-5, atol=1e-4
    )
    np.testing.assert_allclose(values(outputs.features[0]), dense, rtol=1e-5)


def regularized_model():
    """A nested Sequential of Dense, BatchNormalization and Dropout."""
    inner = keras.Sequential(
        [
            keras.layers.Dense(16, name="dense"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dropout(0.5, name="drop"),
        ],
        name="inner",
    )
    inputs = keras.Input((FEATURES,))
    return keras.Model(inputs, keras.layers.Dense(3)(inner(inputs)))


def test_training_reaches_the_layers_of_nested_models():
    model = regularized_model()
    x = tensor(samples=32)
    view = views.ModelView(model, ["inner/bn", "inner/drop"], "student")
    bn = model.get_layer("inner").get_layer("bn")
    kernel, bias = model.get_layer("inner").get_layer("dense").get_weights()
    dense = values(x) @ kernel + bias
    inference = view(x, training=False)
    np.testing.assert_allclose(
        values(inference.features[0]), dense / np.sqrt(1 + 1e-3), rtol=1e-5
    )
    np.testing.assert_array_equal(
        values(inference.features[1]), values(inference.features[0])
    )
    np.testing.assert_array_equal(values(bn.moving_mean), 0)
    training = view(x, training=True)
    normalized = (dense - dense.mean(0)) / np.sqrt(dense.var(0) + 1e-3)
    np.testing.assert_allclose(
        values(training.features[0]), normalized, rtol=1e-4, atol=1e-5
    )
    dropped = values(training.features[1])
    assert 0.3 < np.mean(dropped == 0) < 0.7
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], 2 * normalized[kept], rtol=1e-4)
    # The model's own batch statistics moved.
    np.testing.assert_allclose(
        values(bn.moving_mean), 0.01 * dense.mean(0), rtol=1e-4, atol=1e-6
    )


def test_gradients_through_a_path_reach_the_model_weights():
    model = nested_model(inner_model("sequential"))
    view = views.ModelView(model, ["inner/dense"], "student")
    x = tensor(samples=5)
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(view(x, training=True).features[0])
    gradients = tape.gradient(loss, model.trainable_variables)
    # Dense "pre" and "inner/dense" feed the feature; the rest does not.
    assert [g is not None for g in gradients] == [True] * 4 + [False] * 4


def test_a_path_is_read_under_xla():
    model = regularized_model()
    view = views.ModelView(model, ["inner/drop"], "student")
    x = tensor(samples=8)
    read = tf.function(lambda x: view(x).features[0], jit_compile=True)
    np.testing.assert_allclose(
        values(read(x)), values(view(x).features[0]), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "name, match",
    [
        (
            "dense",
            r"The student 'model' has no layer named 'dense'\. Its layers: "
            r"x, pre, inner \(a model: name its layers as 'inner/<layer>', "
            r"e\.g\. 'inner/dense'\), out\. Did you mean 'inner/dense'\?$",
        ),
        (
            "nope",
            r"no layer named 'nope'\. Its layers: x, pre, inner \(a model: "
            r"name its layers as 'inner/<layer>', e\.g\. 'inner/dense'\), "
            r"out\.$",
        ),
        (
            "inner/nope",
            r"The student 'model' has no layer named 'inner/nope': 'inner' "
            r"has no layer named 'nope'\. Its layers: dense, head\.$",
        ),
        (
            "pre/dense",
            r"no layer named 'pre/dense': 'pre' is a Dense layer, not a "
            r"model with layers of its own\. Did you mean 'inner/dense'\?",
        ),
        ("inner/", r"joined by '/' \(e\.g\. 'backbone/conv_1'\)\. Received"),
    ],
)
def test_a_wrong_path_is_named_with_the_layers_where_it_was_looked_for(
    name, match
):
    model = nested_model(inner_model("sequential"))
    with pytest.raises(ValueError, match=match):
        views.layer_output(model, name, "student")
    with pytest.raises(ValueError, match=match):
        views.ModelView(model, ["inner/dense", name], "student")


def test_a_subclassed_nested_model_is_refused_by_path():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__(name="inner")
            self.dense = keras.layers.Dense(4, name="dense")

        def call(self, x):
            return self.dense(x)

    model = nested_model(Subclassed())
    with pytest.raises(
        TypeError, match="student's model 'inner' is a subclassed"
    ):
        views.ModelView(model, ["inner/dense"], "student")
    # Its output is read all the same.
    x = tensor(samples=3)
    outputs = views.ModelView(model, ["inner"], "student")(x)
    inner = keras.Model(model.inputs, model.get_layer("inner").output)
    np.testing.assert_allclose(
        values(outputs.features[0]), values(inner(x)), rtol=1e-6
    )


def test_a_layer_of_a_keras_application_is_named_by_its_path():
    model = augmented_mobilenet("student", classes=10)
    application = model.get_layer("MobileNetV3Small")
    with pytest.raises(ValueError) as error:
        views.layer_output(model, "expanded_conv_2_add", "student")
    assert str(error.value) == (
        "The student 'student' has no layer named 'expanded_conv_2_add'. "
        "Its layers: image, augment (a model: name its layers as "
        "'augment/<layer>', e.g. 'augment/flip'), MobileNetV3Small "
        "(a model: name its layers as 'MobileNetV3Small/<layer>', e.g. "
        "'MobileNetV3Small/expanded_conv_2_add'). Did you mean "
        "'MobileNetV3Small/expanded_conv_2_add'?"
    )
    path = "MobileNetV3Small/expanded_conv_2_add"
    assert views.feature_shape(model, path, "student") == (4, 4, 24)
    assert views.feature_shape(model, "MobileNetV3Small") == (10,)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3))
    x = tf.constant(x, "float32")
    outputs = views.ModelView(model, [path, "MobileNetV3Small"], "student")(x)
    inner = application.get_layer("expanded_conv_2_add").output
    expected = keras.Model(application.input, inner)(x)
    np.testing.assert_allclose(
        values(outputs.features[0]), values(expected), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        values(outputs.features[1]), values(outputs.output), rtol=1e-6
    )
    np.testing.assert_allclose(
        values(outputs.output),
        values(model(x, training=False)),
        rtol=1e-5,
        atol=1e-5,
    )
