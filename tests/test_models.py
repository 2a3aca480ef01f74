import keras
import numpy as np
import pytest

from kd_keras import models, views


@pytest.mark.parametrize(
    "build,input_shape,hidden",
    [
        (models.mlp_teacher, (64,), [256, 256, 256]),
        (models.mlp_student, (64,), [128]),
        (models.mlp_student, (8, 8), [128]),
        (models.mlp_assistant, (64,), [192, 192]),
    ],
)
def test_mlp_architectures(build, input_shape, hidden):
    model = build(input_shape, 10)
    dense = [
        layer for layer in model.layers if isinstance(layer, keras.layers.Dense)
    ]
    assert [layer.units for layer in dense] == hidden + [10]
    assert dense[-1].activation is keras.activations.linear
    features = int(np.prod(input_shape))
    widths = [features] + hidden + [10]
    assert model.count_params() == sum(
        (a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True)
    )


def test_cnn_pair_returns_logits_and_student_is_smaller():
    teacher, student = models.cnn_teacher(), models.cnn_student()
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    assert teacher(x).shape == student(x).shape == (2, 10)
    assert teacher.layers[-1].activation is keras.activations.linear
    assert student.count_params() * 10 < teacher.count_params()
    assistant = models.cnn_assistant()
    assert assistant(x).shape == (2, 10)
    assert (
        student.count_params()
        < assistant.count_params()
        < teacher.count_params()
    )


def test_build_by_name_and_bad_names():
    assert models.build("cnn", "student", (28, 28, 1), 10).name == (
        "cnn_student"
    )
    with pytest.raises(ValueError, match="architecture must be one of"):
        models.build("transformer", "student", (8,), 2)
    with pytest.raises(ValueError, match="takes images"):
        models.build("cnn", "teacher", (64,), 10)


def test_build_rescales_the_inputs_before_the_same_layers():
    model = models.build("cnn", "student", (8, 8, 1), 3, rescale=1 / 255)
    plain = models.build("cnn", "student", (8, 8, 1), 3)
    names = [layer.name for layer in model.layers]
    assert names[1] == "rescaling"
    assert {"conv_0", "pool_1", "dense", "logits"} <= set(names)
    assert [type(layer) for layer in model.layers[2:]] == [
        type(layer) for layer in plain.layers[1:]
    ]
    plain.set_weights(model.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 1))
    np.testing.assert_allclose(
        model.predict(x, verbose=0),
        plain.predict(x / 255, verbose=0),
        rtol=1e-5,
    )


@pytest.mark.parametrize("name", ["MobileNetV3Small", "MobileNetV2"])
def test_an_application_takes_pixels_and_returns_logits(name):
    model = models.application(name, (32, 32, 3), num_classes=5)
    assert model.output_shape == (None, 5)
    backbone = model.get_layer(name)
    assert views.output_activation(model) is None
    momenta = {
        layer.momentum
        for layer in backbone.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }
    assert momenta == {0.9}
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3))
    assert np.isfinite(model.predict(x, verbose=0)).all()


def test_an_unknown_application_is_named():
    with pytest.raises(ValueError, match="name must be a Keras Application"):
        models.application("ResNet50", (32, 32, 3), 10)
    with pytest.raises(ValueError, match="weights must be None or 'imagenet'"):
        models.application("MobileNetV2", (32, 32, 3), 10, weights="w.h5")
