"""`kd-keras export`: a model converted to TensorFlow Lite, its accuracy
compared with the Keras model's."""

from pathlib import Path

from kd_keras.app.commands import models
from kd_keras.files import check_free

HELP = "convert a model for deployment"
DESCRIPTION = (
    "Converts a model to TensorFlow Lite, optionally quantized, and "
    "compares the converted model's test accuracy with the Keras one."
)
EXAMPLES = """examples:
  kd-keras export student.h5 --dataset digits --output student.tflite
  kd-keras export student.h5 --dataset digits --quantize int8 \\
      --output student_int8.tflite"""


def add_arguments(parser):
    parser.add_argument("model", type=Path)
    parser.add_argument("--format", choices=("tflite",), default="tflite")
    parser.add_argument(
        "--quantize",
        default="none",
        choices=("none", "float16", "dynamic", "int8"),
    )
    parser.add_argument(
        "--dataset",
        default="digits",
        help="test data, and int8 calibration data",
    )
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--overwrite", action="store_true")


def run(args):
    from kd_keras import datasets, export
    from kd_keras.app import evaluation
    from kd_keras.validation import check_fits

    check_free([args.output], args.overwrite, models.OVERWRITE)
    model = models.load(args.model, args)
    (x_train, _), (x_test, y_test) = datasets.load(args.dataset)
    check_fits(model, "model", x_test, y_test)
    flatbuffer = export.to_tflite(model, args.quantize, x_train)
    path = export.write_bytes(args.output, flatbuffer, args.overwrite)
    keras_accuracy = evaluation.accuracy(model, x_test, y_test)
    tflite_accuracy = export.tflite_accuracy(flatbuffer, x_test, y_test)
    print(
        f"{path}: {len(flatbuffer) / 1024:,.0f} KiB "
        f"(Keras file {args.model.stat().st_size / 1024:,.0f} KiB); "
        f"test accuracy TFLite {tflite_accuracy:.4f}, "
        f"Keras {keras_accuracy:.4f}"
    )
