"""Export of a student for deployment: TensorFlow Lite, optionally quantized."""

import time
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from kd_keras.batches import correct, first_sample, is_dataset, iterate
from kd_keras.files import atomic_path
from kd_keras.quiet import silenced
from kd_keras.validation import check_sample_shape

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


def _representative(x, samples=200, seed=0):
    """The calibration samples of `x`, each a float32 batch of one.

    From an array, `samples` drawn at random (with `seed`); from a dataset,
    its first `samples` samples, read as the converter asks for them.
    """
    # Checked now, not when the converter reads the first batch.
    iterate(x, x_name="representative_x")
    if is_dataset(x):

        def batches():
            left = samples
            for batch, _ in iterate(x, x_name="representative_x"):
                for sample in batch[:left]:
                    yield [sample[np.newaxis].astype("float32")]
                left -= min(left, len(batch))
                if not left:
                    return

        return batches
    rng = np.random.default_rng(seed)
    chosen = x[rng.choice(len(x), size=min(samples, len(x)), replace=False)]

    def batches():
        for sample in chosen:
            yield [sample[np.newaxis].astype("float32")]

    return batches


def to_tflite(model, quantize="none", representative_x=None):
    """Converts `model` to a TFLite flatbuffer.

    Args:
        model: A `keras.Model`.
        quantize: `"none"` (float32 weights), `"float16"` (float16
            weights), `"dynamic"` (int8 weights, float activations) or
            `"int8"` (full integer: int8 weights, activations, inputs and
            outputs, calibrated on `representative_x`). Defaults to
            `"none"`.
        representative_x: Training inputs for the int8 calibration: an
            array, of which 200 samples drawn at random (with a fixed
            seed) calibrate, or a `tf.data.Dataset` of batches (elements
            `x`, `(x, y)` or `(x, y, sample_weight)`), of which the first
            200 samples, in the dataset's order, calibrate: only the
            batches holding them are read. The calibration is then as
            deterministic as that order: a dataset sorted by class (as
            `image_dataset_from_directory(..., shuffle=False)` reads a
            folder) calibrates on the first classes only, so shuffle it,
            with a seed, first. Each sample is passed as a float32 batch
            of one. Defaults to `None`; required for `"int8"`.

    Returns:
        The flatbuffer as `bytes`.

    Raises:
        ValueError: `quantize` is unknown, or `"int8"` without
            `representative_x`, or `representative_x` is empty.

    Example:

    ```python
    flatbuffer = kd_keras.export.to_tflite(student, quantize="dynamic")
    accuracy = kd_keras.export.tflite_accuracy(flatbuffer, x_test, y_test)
    probabilities = kd_keras.export.tflite_predict(flatbuffer, x_test)

    # Images in folders, calibrated and measured as they stream.
    train_ds = keras.utils.image_dataset_from_directory(
        "images/train", image_size=(96, 96), seed=0
    )
    test_ds = keras.utils.image_dataset_from_directory(
        "images/test", image_size=(96, 96), shuffle=False
    )
    flatbuffer = kd_keras.export.to_tflite(
        student, quantize="int8", representative_x=train_ds
    )
    accuracy = kd_keras.export.tflite_accuracy(flatbuffer, test_ds)
    ```
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            f"quantize must be one of {', '.join(QUANTIZATIONS)}. "
            f"Received: quantize={quantize!r}"
        )
    if quantize == "int8" and representative_x is None:
        raise ValueError("quantize='int8' needs representative_x.")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        converter.representative_dataset = _representative(representative_x)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    # The converter prints its saved artifact, its assets and its
    # quantization settings: `kd_keras.quiet.SHOW_TENSORFLOW` shows them.
    with warnings.catch_warnings(), silenced():
        warnings.simplefilter("ignore")
        return converter.convert()


def _interpreter(flatbuffer, num_threads=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite's deprecation notice
        interpreter = tf.lite.Interpreter(
            model_content=flatbuffer, num_threads=num_threads
        )
    return interpreter


def _set_input(interpreter, batch):
    """Sizes the interpreter for `batch` and sets it, quantized with the
    input's scale and zero point if the model takes integers."""
    given = interpreter.get_input_details()[0]
    check_sample_shape(
        "x", batch.shape[1:], "the TFLite model", given["shape"][1:]
    )
    batch = batch.astype("float32")
    interpreter.resize_tensor_input(given["index"], batch.shape)
    with silenced():  # "Created TensorFlow Lite XNNPACK delegate"
        interpreter.allocate_tensors()
    if given["dtype"] != np.float32:
        scale, zero = given["quantization"]
        batch = np.round(batch / scale + zero).astype(given["dtype"])
    interpreter.set_tensor(given["index"], batch)


def read_tflite(path):
    """Reads a TFLite model file, such as `kd-keras export` writes.

    Args:
        path: The `.tflite` file.

    Returns:
        The flatbuffer as `bytes`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: The file is not a TFLite model.

    Example:

    ```python
    flatbuffer = kd_keras.export.read_tflite("student_int8.tflite")
    accuracy = kd_keras.export.tflite_accuracy(flatbuffer, x_test, y_test)
    ```
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {str(path)!r}.")
    flatbuffer = path.read_bytes()
    try:
        _interpreter(flatbuffer)
    except ValueError as error:
        raise ValueError(
            f"Cannot read the TFLite file {str(path)!r}: it is empty, "
            f"corrupt, truncated or not a TFLite model ({error})."
        ) from None
    return flatbuffer


def _tflite_batches(flatbuffer, x, y=None, batch_size=256, needs_labels=False):
    """`(outputs, y_batch)` of the TFLite model, batch by batch of `x`."""
    x_batches = iterate(x, y, batch_size, needs_labels)
    interpreter = _interpreter(flatbuffer)
    returned = interpreter.get_output_details()[0]
    scale, zero = returned["quantization"]
    for x_batch, y_batch in x_batches:
        _set_input(interpreter, x_batch)
        interpreter.invoke()
        out = interpreter.get_tensor(returned["index"]).astype("float32")
        if returned["dtype"] != np.float32:
            out = (out - zero) * scale
        yield out, y_batch


def tflite_predict(flatbuffer, x, batch_size=256):
    """Runs the TFLite model on `x`; returns float outputs.

    Quantized inputs and outputs are converted with the model's scale and
    zero point.

    Args:
        flatbuffer: The model, from `to_tflite`.
        x: Inputs: a numpy array, or a `tf.data.Dataset` of batches
            (elements `x`, `(x, y)` or `(x, y, sample_weight)`; the labels
            are not used), read once, batch by batch.
        batch_size: Samples per interpreter call for an array `x`; a
            dataset is run in its own batches. Defaults to `256`.

    Returns:
        The outputs of every sample, in order, as one float32 numpy array.

    Raises:
        ValueError: The samples of `x` are not of the model's input shape,
            or `x` holds no sample.

    Example:

    ```python
    flatbuffer = kd_keras.export.to_tflite(student, quantize="dynamic")
    accuracy = kd_keras.export.tflite_accuracy(flatbuffer, x_test, y_test)
    probabilities = kd_keras.export.tflite_predict(flatbuffer, x_test)
    ```
    """
    batches = _tflite_batches(flatbuffer, x, batch_size=batch_size)
    return np.concatenate([out for out, _ in batches])


def tflite_latency_ms(flatbuffer, x, repeats=200):
    """Median time, in milliseconds, of the TFLite model on one sample.

    The interpreter runs on one thread, as on a phone's core, warmed up
    first; the time is that of `invoke`, not of Python.

    Args:
        flatbuffer: The model, from `to_tflite`.
        x: Inputs, a numpy array or a `tf.data.Dataset` of batches; its
            first sample is used (only the first batch is read).
        repeats: Timed calls. Defaults to `200`.

    Returns:
        The median time in milliseconds, as a float.

    Example:

    ```python
    flatbuffer = kd_keras.export.to_tflite(student, quantize="int8",
                                           representative_x=x_train)
    milliseconds = kd_keras.export.tflite_latency_ms(flatbuffer, x_test)
    ```
    """
    interpreter = _interpreter(flatbuffer, num_threads=1)
    _set_input(interpreter, first_sample(x))
    for _ in range(5):
        interpreter.invoke()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def tflite_accuracy(flatbuffer, x, y=None):
    """Top-1 accuracy of the TFLite model on `(x, y)`.

    Labels are class indices, `(samples,)` or `(samples, 1)`, or one-hot
    rows, whose argmax is the class.

    Args:
        flatbuffer: The model, from `to_tflite`.
        x: Inputs: a numpy array, or a `tf.data.Dataset` of `(x, y)` or
            `(x, y, sample_weight)` batches, which carry the labels; read
            once, batch by batch.
        y: The labels of an array `x`; `None` with a dataset. Defaults to
            `None`.

    Returns:
        The accuracy as a float.

    Raises:
        ValueError: Arrays `x` without `y` or with a `y` of another
            length, a dataset with `y` or whose elements carry no labels,
            or no sample.

    Example:

    ```python
    flatbuffer = kd_keras.export.to_tflite(student, quantize="dynamic")
    accuracy = kd_keras.export.tflite_accuracy(flatbuffer, x_test, y_test)
    # The same, from a dataset of (x, y) batches.
    test_ds = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(64)
    accuracy = kd_keras.export.tflite_accuracy(flatbuffer, test_ds)
    ```
    """
    batches = _tflite_batches(flatbuffer, x, y, needs_labels=True)
    hits = [correct(out, y_batch) for out, y_batch in batches]
    return float(np.mean(np.concatenate(hits)))


def write_bytes(path, content, overwrite=False):
    """Writes `content` to `path` atomically; refuses to replace silently."""
    with atomic_path(path, overwrite) as tmp:
        Path(tmp).write_bytes(content)
    return Path(path)


__all__ = [
    "QUANTIZATIONS",
    "to_tflite",
    "read_tflite",
    "tflite_predict",
    "tflite_latency_ms",
    "tflite_accuracy",
]
