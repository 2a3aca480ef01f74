"""`kd-keras evaluate`: a saved model's test accuracy, size and latency,
and its agreement with a teacher."""

from pathlib import Path

from kd_keras.app.commands import models

HELP = "measure a saved model"
DESCRIPTION = (
    "Prints a model's test accuracy, parameters, file size and latency, "
    "and its agreement with a teacher if one is given. A .tflite file, as "
    "`kd-keras export` writes, is run by the TFLite interpreter."
)
EXAMPLES = """examples:
  kd-keras evaluate student.h5 --dataset digits
  kd-keras evaluate student.h5 --dataset digits --teacher teacher.h5
  kd-keras evaluate student_int8.tflite --dataset digits"""


def add_arguments(parser):
    parser.add_argument("model", type=Path)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--teacher", type=Path)


def run(args):
    from kd_keras import datasets
    from kd_keras.app import evaluation
    from kd_keras.validation import check_fits

    if args.model.suffix == ".tflite":
        return _run_tflite(args)
    model = models.load(args.model, args)
    (_, _), (x_test, y_test) = datasets.load(args.dataset)
    check_fits(model, "model", x_test, y_test)
    measures = models.measure(model, args.model, x_test, y_test)
    models.print_measures(str(args.model), measures)
    if args.teacher:
        teacher = models.load(args.teacher, args)
        check_fits(teacher, "teacher", x_test, y_test)
        agreement = evaluation.agreement(teacher, model, x_test)
        print(f"agreement with {args.teacher}: {agreement:.4f}")


def _run_tflite(args):
    """`evaluate` of a `.tflite` file, as `kd-keras export` writes them."""
    import numpy as np

    from kd_keras import datasets, export
    from kd_keras.app import evaluation
    from kd_keras.validation import check_fits

    flatbuffer = export.read_tflite(args.model)
    (_, _), (x_test, y_test) = datasets.load(args.dataset)
    outputs = export.tflite_predict(flatbuffer, x_test[:1]).shape[-1]
    if outputs != datasets.num_classes(y_test):
        raise ValueError(
            f"The model has {outputs} outputs, but the dataset has "
            f"{datasets.num_classes(y_test)} classes."
        )
    accuracy = export.tflite_accuracy(flatbuffer, x_test, y_test)
    print(
        f"{args.model}: test accuracy {accuracy:.4f}, "
        f"{len(flatbuffer) / 1024:,.0f} KiB, "
        f"{export.tflite_latency_ms(flatbuffer, x_test):.3f} ms/sample "
        "(TFLite, one thread)"
    )
    if args.teacher:
        teacher = models.load(args.teacher, args)
        check_fits(teacher, "teacher", x_test, y_test)
        classes = np.argmax(export.tflite_predict(flatbuffer, x_test), -1)
        agreement = np.mean(
            evaluation.predict_classes(teacher, x_test) == classes
        )
        print(f"agreement with {args.teacher}: {agreement:.4f}")
