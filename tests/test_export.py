"""TFLite export: the converted model keeps the Keras model's accuracy."""

import keras
import numpy as np
import pytest

from kd_keras import datasets, export
from kd_keras.app import evaluation, protocol


@pytest.fixture(scope="module")
def trained():
    data = datasets.load("digits")
    student = protocol.new_student(data, "mlp", seed=0)
    student.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    student.fit(*data[0], epochs=10, verbose=0)
    return student, data


@pytest.mark.parametrize("quantize", ["none", "float16", "dynamic", "int8"])
def test_tflite_accuracy_parity(trained, quantize):
    model, ((x_train, _), (x_test, y_test)) = trained
    flatbuffer = export.to_tflite(model, quantize, x_train)
    keras_accuracy = evaluation.accuracy(model, x_test, y_test)
    tflite_accuracy = export.tflite_accuracy(flatbuffer, x_test, y_test)
    assert keras_accuracy > 0.9
    assert abs(tflite_accuracy - keras_accuracy) <= 0.01
    if quantize == "none":
        np.testing.assert_allclose(
            export.tflite_predict(flatbuffer, x_test),
            model.predict(x_test, verbose=0),
            atol=1e-4,
        )


def test_quantization_shrinks_the_file(trained):
    model, ((x_train, _), _) = trained
    sizes = {
        q: len(export.to_tflite(model, q, x_train))
        for q in ("none", "float16", "int8")
    }
    assert sizes["int8"] < sizes["float16"] < sizes["none"]


def test_bad_quantize_and_missing_calibration(trained):
    model, _ = trained
    with pytest.raises(ValueError, match="quantize must be one of"):
        export.to_tflite(model, "int4")
    with pytest.raises(ValueError, match="needs representative_x"):
        export.to_tflite(model, "int8")


def test_write_bytes_refuses_to_overwrite(tmp_path):
    path = export.write_bytes(tmp_path / "m.tflite", b"one")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export.write_bytes(path, b"two")
    export.write_bytes(path, b"two", overwrite=True)
    assert path.read_bytes() == b"two"


def test_cnn_converts(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(2, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    flatbuffer = export.to_tflite(model, "none")
    np.testing.assert_allclose(
        export.tflite_predict(flatbuffer, x),
        model.predict(x, verbose=0),
        atol=1e-5,
    )


def test_read_tflite_and_latency(trained, tmp_path):
    model, ((x_train, _), (x_test, _)) = trained
    flatbuffer = export.to_tflite(model, "int8", x_train)
    path = export.write_bytes(tmp_path / "s.tflite", flatbuffer)
    assert export.read_tflite(path) == flatbuffer
    assert 0 < export.tflite_latency_ms(flatbuffer, x_test, repeats=20) < 100
    with pytest.raises(
        ValueError,
        match=r"x has samples of shape \(8,\), but the inputs of the TFLite "
        r"model have shape \(64,\)",
    ):
        export.tflite_predict(flatbuffer, x_test[:, :8])
