"""Export of a student for deployment: TensorFlow Lite, optionally quantized."""

import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from kd_keras.saving import atomic_path

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


def _interpreter(flatbuffer):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite's deprecation notice
        interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    return interpreter


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

    Example:

    ```python
    flatbuffer = kd_keras.export.to_tflite(student, quantize="dynamic")
    accuracy = kd_keras.export.tflite_accuracy(flatbuffer, x_test, y_test)
    probabilities = kd_keras.export.tflite_predict(flatbuffer, x_test)
    ```
    """
    interpreter = _interpreter(flatbuffer)
    given = interpreter.get_input_details()[0]
    returned = interpreter.get_output_details()[0]
    outputs = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size].astype("float32")
        interpreter.resize_tensor_input(given["index"], batch.shape)
        interpreter.allocate_tensors()
        scale, zero = given["quantization"]
        if given["dtype"] != np.float32:
            batch = np.round(batch / scale + zero).astype(given["dtype"])
        interpreter.set_tensor(given["index"], batch)
        interpreter.invoke()
        out = interpreter.get_tensor(returned["index"]).astype("float32")
        scale, zero = returned["quantization"]
        if returned["dtype"] != np.float32:
            out = (out - zero) * scale
        outputs.append(out)
    return np.concatenate(outputs)


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
