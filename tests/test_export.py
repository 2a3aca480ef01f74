"""TFLite export: the converted model keeps the Keras model's accuracy."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

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


# --- Arrays or a tf.data.Dataset ------------------------------------------


def _interpreter_outputs(flatbuffer, x):
    """The TFLite model's float outputs on all of `x` in one call, read
    with `tf.lite.Interpreter` alone: what `export`, which runs batch by
    batch, is compared with."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite's deprecation notice
        interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    given = interpreter.get_input_details()[0]
    returned = interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(given["index"], x.shape)
    interpreter.allocate_tensors()
    x = x.astype("float32")
    if given["dtype"] == np.int8:
        scale, zero = given["quantization"]
        x = np.round(x / scale + zero).astype(np.int8)
    interpreter.set_tensor(given["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(returned["index"]).astype("float32")
    if returned["dtype"] == np.int8:
        scale, zero = returned["quantization"]
        out = (out - zero) * scale
    return out


def _batched(*arrays):
    """A dataset of batches of 7, which do not divide the samples."""
    return tf.data.Dataset.from_tensor_slices(arrays).batch(7)


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_datasets_give_the_results_of_arrays(trained, quantize):
    model, ((x_train, _), (x_test, y_test)) = trained
    assert len(x_test) % 7
    flatbuffer = export.to_tflite(model, quantize, x_train)
    expected = _interpreter_outputs(flatbuffer, x_test)
    accuracy = float(np.mean(np.argmax(expected, -1) == y_test))
    assert 0.9 < accuracy < 1
    weights = np.ones(len(x_test), "float32")
    for name, (x, y) in {
        "arrays": (x_test, y_test),
        "(x, y)": (_batched(x_test, y_test), None),
        "(x, y, w)": (_batched(x_test, y_test, weights), None),
        "prefetched": (_batched(x_test, y_test).prefetch(2), None),
    }.items():
        np.testing.assert_allclose(
            export.tflite_predict(flatbuffer, x),
            expected,
            atol=1e-5,
            err_msg=name,
        )
        assert export.tflite_accuracy(flatbuffer, x, y) == accuracy, name
        assert 0 < export.tflite_latency_ms(flatbuffer, x, repeats=5) < 100
    np.testing.assert_allclose(
        export.tflite_predict(flatbuffer, _batched(x_test)), expected, atol=1e-5
    )


def test_one_hot_and_column_labels(trained):
    model, (_, (x_test, y_test)) = trained
    flatbuffer = export.to_tflite(model)
    classes = np.argmax(_interpreter_outputs(flatbuffer, x_test), -1)
    expected = float(np.mean(classes == y_test))
    one_hot = np.eye(10, dtype="float32")[y_test]
    column = y_test[:, np.newaxis]
    for x, y in [
        (x_test, one_hot),
        (x_test, column),
        (_batched(x_test, one_hot), None),
        (_batched(x_test, column), None),
    ]:
        assert export.tflite_accuracy(flatbuffer, x, y) == expected


def test_int8_calibration_streams_the_first_samples_of_a_dataset(trained):
    """A dataset calibrates on its first 200 samples: the model is the
    one calibrated on those samples as an array (of which all 200 are
    drawn, in another order, which min-max calibration does not see).
    """
    model, ((x_train, y_train), (x_test, y_test)) = trained
    first = export.to_tflite(model, "int8", x_train[:200])
    others = export.to_tflite(model, "int8", x_train[200:400])
    assert first != others  # the calibration samples show in the model
    read = []

    def batches():
        for start in range(0, len(x_train), 7):
            read.append(start)
            yield x_train[start : start + 7], y_train[start : start + 7]

    counted = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec((None, 64), tf.float32),
            tf.TensorSpec((None,), tf.as_dtype(y_train.dtype)),
        ),
    )
    weights = np.ones(len(x_train), "float32")
    for dataset in [
        counted,
        _batched(x_train, y_train),
        _batched(x_train),
        _batched(x_train, y_train, weights),
        _batched(x_train.astype("float64")),  # cast to float32
    ]:
        assert export.to_tflite(model, "int8", dataset) == first
    # 29 batches of 7 hold the 200 samples; tf.data may read a few ahead,
    # never the whole set (206 batches).
    assert 29 <= len(read) < 60
    accuracy = export.tflite_accuracy(first, _batched(x_test, y_test))
    assert accuracy == export.tflite_accuracy(first, x_test, y_test) > 0.9


def test_dataset_and_label_errors(trained):
    model, ((x_train, y_train), (x_test, y_test)) = trained
    flatbuffer = export.to_tflite(model)
    with pytest.raises(ValueError, match="x is a tf.data.Dataset whose "):
        export.tflite_accuracy(flatbuffer, _batched(x_test))
    with pytest.raises(ValueError, match="y is needed with arrays x"):
        export.tflite_accuracy(flatbuffer, x_test)
    with pytest.raises(ValueError, match="'x' sizes: 360\n'y' sizes: 359"):
        export.tflite_accuracy(flatbuffer, x_test, y_test[:-1])
    with pytest.raises(ValueError, match="y must be None when x is a tf"):
        export.tflite_accuracy(flatbuffer, _batched(x_test, y_test), y_test)
    empty = _batched(x_test[:0], y_test[:0])
    # Of unknown length: found empty only once read.
    filtered = _batched(x_test, y_test).filter(lambda *batch: False)
    assert int(filtered.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    for nothing in (empty, filtered):
        for measure in (
            export.tflite_predict,
            export.tflite_accuracy,
            export.tflite_latency_ms,
        ):
            with pytest.raises(ValueError, match="x is an empty tf.data"):
                measure(flatbuffer, nothing)
        with pytest.raises(
            ValueError, match="representative_x is an empty tf.data"
        ):
            export.to_tflite(model, "int8", nothing)
    with pytest.raises(ValueError, match=r"x is empty \(0 samples\)"):
        export.tflite_predict(flatbuffer, x_test[:0])
    with pytest.raises(ValueError, match=r"representative_x is empty"):
        export.to_tflite(model, "int8", x_train[:0])
