"""Export of a student for deployment: TensorFlow Lite, optionally quantized."""

import time
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from kd_keras.files import atomic_path
from kd_keras.validation import check_sample_shape

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


def _representative(x, samples=200, seed=0):
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
        representative_x: Training inputs for the int8 calibration.
            Defaults to `None`; required for `"int8"`.

    Returns:
        The flatbuffer as `bytes`.

    Example:

    ```python
    flatbuffer = kd_keras.export.to_tflite(student, quantize="dynamic")
    accuracy = kd_keras.export.tflite_accuracy(flatbuffer, x_test, y_test)
    probabilities = kd_keras.export.tflite_predict(flatbuffer, x_test)
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
    with warnings.catch_warnings():
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


def tflite_predict(flatbuffer, x, batch_size=256):
    """Runs the TFLite model on `x`; returns float outputs.

    Quantized inputs and outputs are converted with the model's scale and
    zero point.

    Args:
        flatbuffer: The model, from `to_tflite`.
        x: Inputs, a numpy array.
        batch_size: Samples per interpreter call. Defaults to `256`.

    Returns:
        The outputs as a float32 numpy array.

    Raises:
        ValueError: The samples of `x` are not of the model's input shape.

    Example:

    ```python
    flatbuffer = kd_keras.export.to_tflite(student, quantize="dynamic")
    accuracy = kd_keras.export.tflite_accuracy(flatbuffer, x_test, y_test)
    probabilities = kd_keras.export.tflite_predict(flatbuffer, x_test)
    ```
    """
    interpreter = _interpreter(flatbuffer)
    returned = interpreter.get_output_details()[0]
    outputs = []
    for start in range(0, len(x), batch_size):
        _set_input(interpreter, x[start : start + batch_size])
        interpreter.invoke()
        out = interpreter.get_tensor(returned["index"]).astype("float32")
        scale, zero = returned["quantization"]
        if returned["dtype"] != np.float32:
            out = (out - zero) * scale
        outputs.append(out)
    return np.concatenate(outputs)


def tflite_latency_ms(flatbuffer, x, repeats=200):
    """Median time, in milliseconds, of the TFLite model on one sample.

    The interpreter runs on one thread, as on a phone's core, warmed up
    first; the time is that of `invoke`, not of Python.

    Args:
        flatbuffer: The model, from `to_tflite`.
        x: Inputs, a numpy array; its first sample is used.
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
    _set_input(interpreter, x[:1])
    for _ in range(5):
        interpreter.invoke()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def tflite_accuracy(flatbuffer, x, y):
    """Top-1 accuracy of the TFLite model on `(x, y)`.

    Args:
        flatbuffer: The model, from `to_tflite`.
        x: Inputs, a numpy array.
        y: Integer labels.

    Returns:
        The accuracy as a float.

    Example:

    ```python
    flatbuffer = kd_keras.export.to_tflite(student, quantize="dynamic")
    accuracy = kd_keras.export.tflite_accuracy(flatbuffer, x_test, y_test)
    probabilities = kd_keras.export.tflite_predict(flatbuffer, x_test)
    ```
    """
    return float(np.mean(np.argmax(tflite_predict(flatbuffer, x), -1) == y))


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
