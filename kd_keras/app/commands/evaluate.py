"""`kd-keras evaluate`: a saved model's test accuracy, size and latency,
and its agreement with a teacher."""

from pathlib import Path

from kd_keras import datasets
from kd_keras.app.commands import arguments, models

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
    arguments.add_dataset(parser, "the test data")
    parser.add_argument("--teacher", type=Path)


def _test_set(data):
    """The test set of `data`, or a clear error for a folder without one."""
    if data.test is None:
        raise ValueError(
            f"{data.name} has no test/ folder: put the test images in "
            f"{data.name}/test/<class>/ to evaluate on them."
        )
    return data.test


def check(args):
    models.check_file(args.model, suffixes=(*models.MODEL_SUFFIXES, ".tflite"))
    datasets.check(args.dataset)
    models.check_inputs_exist(args)


def run(args):
    from kd_keras.app import data as app_data
    from kd_keras.app import evaluation

    if args.model.suffix == ".tflite":
        return _run_tflite(args)
    model = models.load(args.model, args)
    data = app_data.load_for(args)
    test = _test_set(data)
    data.check_fits(model, "model")
    models.check_inputs(model, f"model {args.model}", data)
    measures = models.measure(model, args.model, test)
    models.print_measures(str(args.model), measures)
    if args.teacher:
        teacher = models.load(args.teacher, args)
        data.check_fits(teacher, "teacher")
        x = test[0] if isinstance(test, tuple) else test
        agreement = evaluation.agreement(teacher, model, x)
        print(f"agreement with {args.teacher}: {agreement:.4f}")


def _run_tflite(args):
    """`evaluate` of a `.tflite` file, as `kd-keras export` writes them."""
    import numpy as np

    from kd_keras import export
    from kd_keras.app import data as app_data
    from kd_keras.app import evaluation
    from kd_keras.batches import first_sample

    flatbuffer = export.read_tflite(args.model)
    data = app_data.load_for(args)
    test = _test_set(data)
    x, y = test if isinstance(test, tuple) else (test, None)
    outputs = export.tflite_predict(flatbuffer, first_sample(x))
    if outputs.shape[-1] != data.classes:
        raise ValueError(
            f"The model has {outputs.shape[-1]} outputs, but the dataset has "
            f"{data.classes} classes."
        )
    accuracy = export.tflite_accuracy(flatbuffer, x, y)
    print(
        f"{args.model}: test accuracy {accuracy:.4f}, "
        f"{len(flatbuffer) / 1024:,.0f} KiB, "
        f"{export.tflite_latency_ms(flatbuffer, x):.3f} ms/sample "
        "(TFLite, one thread)"
    )
    if args.teacher:
        teacher = models.load(args.teacher, args)
        data.check_fits(teacher, "teacher")
        classes = np.argmax(export.tflite_predict(flatbuffer, x), -1)
        agreement = np.mean(evaluation.predict_classes(teacher, x) == classes)
        print(f"agreement with {args.teacher}: {agreement:.4f}")
