"""`kd-keras export`: a model converted to TensorFlow Lite, its accuracy
compared with the Keras model's."""

from pathlib import Path

from kd_keras import datasets
from kd_keras.app.commands import arguments, models
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
    arguments.add_dataset(
        parser, "the test data, and the int8 calibration's training data"
    )
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--overwrite", action="store_true")


def check(args):
    check_free([args.output], args.overwrite, models.OVERWRITE)
    models.check_file(args.model)
    datasets.check(args.dataset)


def run(args):
    from kd_keras import export
    from kd_keras.app import data as app_data
    from kd_keras.app import evaluation

    model = models.load(args.model, args)
    data = app_data.load_for(args)
    data.check_fits(model, "model")
    train = data.train[0] if isinstance(data.train, tuple) else data.train
    flatbuffer = export.to_tflite(model, args.quantize, train)
    path = export.write_bytes(args.output, flatbuffer, args.overwrite)
    size = (
        f"{path}: {len(flatbuffer) / 1024:,.0f} KiB "
        f"(Keras file {args.model.stat().st_size / 1024:,.0f} KiB)"
    )
    if data.test is None:
        print(f"{size}; {data.name} has no test/ folder to score it on")
        return
    x, y = data.test if isinstance(data.test, tuple) else (data.test, None)
    keras_accuracy = evaluation.accuracy(model, x, y)
    tflite_accuracy = export.tflite_accuracy(flatbuffer, x, y)
    print(
        f"{size}; test accuracy TFLite {tflite_accuracy:.4f}, "
        f"Keras {keras_accuracy:.4f}"
    )
