"""The `kd-keras` command line."""

import argparse
import json
import math
import os
import sys
import textwrap
from pathlib import Path

# The method registry imports neither TensorFlow nor Keras.
import kd_keras.methods as methods

EXAMPLES = {
    "demo": """examples:
  kd-keras demo
  kd-keras demo --labels 300
  kd-keras demo --labels all
  kd-keras demo --dataset fashion_mnist \\
      --teacher saved_models/fashion_mnist_cnn_teacher.h5
  kd-keras demo --seed 1 --models-dir my_models --report-dir my_run""",
    "train-teacher": """examples:
  kd-keras train-teacher --dataset digits --output teacher.h5
  kd-keras train-teacher --dataset fashion_mnist --architecture cnn \\
      --epochs 8 --output fm_teacher.h5""",
    "distill": """examples:
  kd-keras distill --teacher teacher.h5 --student mlp --dataset digits \\
      --output student.h5
  kd-keras distill --teacher fm_teacher.h5 --student my_student.h5 \\
      --dataset fashion_mnist --temperature 2 --alpha 0.5 --epochs 10 \\
      --output fm_student.h5
  kd-keras distill --teacher fm_teacher.h5 --student cnn \\
      --dataset fashion_mnist --method dkd --param beta=8 --param warmup=2 \\
      --output fm_dkd.h5
  kd-keras distill --teacher fm_teacher.h5 --student cnn \\
      --dataset fashion_mnist --method fitnet \\
      --param teacher_layer=pool_1 --param student_layer=pool_1 \\
      --output fm_fitnet.h5
  kd-keras distill --teacher fm_teacher.h5 --teacher other_teacher.h5 \\
      --student cnn --dataset fashion_mnist --output fm_two_teachers.h5
  kd-keras distill --teacher fm_teacher.h5 --student cnn \\
      --dataset fashion_mnist --method takd --param assistant=cnn \\
      --output fm_takd.h5""",
    "tune": """examples:
  kd-keras tune --teacher saved_models/digits_mlp_teacher.h5 --student mlp \\
      --dataset digits --trials 12 --output tuned_student.h5
  kd-keras tune --teacher fm_teacher.h5 --student cnn \\
      --dataset fashion_mnist --tuner hyperband --epochs 9 \\
      --method kd --method dist --output fm_tuned.h5""",
    "store": """examples:
  kd-keras store build --teacher fm_teacher.h5 --dataset fashion_mnist \\
      --top-k 5 --output fm_store
  kd-keras distill --teacher fm_teacher.h5 --teacher-store fm_store \\
      --student mlp --dataset fashion_mnist --output fm_student.h5""",
    "evaluate": """examples:
  kd-keras evaluate student.h5 --dataset digits
  kd-keras evaluate student.h5 --dataset digits --teacher teacher.h5
  kd-keras evaluate student_int8.tflite --dataset digits""",
    "report": """examples:
  kd-keras report runs/demo_digits --overwrite""",
    "export": """examples:
  kd-keras export student.h5 --dataset digits --output student.tflite
  kd-keras export student.h5 --dataset digits --quantize int8 \\
      --output student_int8.tflite""",
}


def _value(value):
    """A default as `--param` takes it: JSON, strings unquoted."""
    return value if isinstance(value, str) else json.dumps(value)


def methods_help(width=80):
    """The methods paragraph of `kd-keras distill --help`, from the
    registry: each method's name, summary and parameters with defaults."""
    column = 2 + max(map(len, methods.REGISTRY)) + 2
    lines = ["methods (--method NAME; in brackets, parameters and defaults):"]
    groups = {
        " losses (--param KEY=VALUE sets the loss's own arguments and "
        "the weight of its term):": methods.METHODS,
        " schemes (--param KEY=VALUE sets their parameters; they distil "
        "with Hinton KD at --temperature):": methods.SCHEMES,
    }
    for heading, group in groups.items():
        lines += textwrap.wrap(heading, width, subsequent_indent="   ")
        for name, method in group.items():
            settings = [
                f"{key}={what}" for key, what in method.required.items()
            ]
            settings += [f"{k}={_value(v)}" for k, v in method.defaults.items()]
            if not method.is_scheme and method.weight != 1.0:
                settings.append(f"weight={_value(method.weight)}")
            text = method.summary
            if not method.teacher:
                text += ", no --teacher"
            if settings:
                text += f" [{', '.join(settings)}]"
            lines += textwrap.wrap(
                text,
                width,
                initial_indent=f"  {name}".ljust(column),
                subsequent_indent=" " * column,
                break_on_hyphens=False,
            )
    return "\n".join(lines)


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _labels(text):
    if text == "all":
        return math.inf
    return _positive_int(text)


def _unit_float(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def _command(commands, name, help_text, description, examples=None):
    command = commands.add_parser(
        name,
        help=help_text,
        description=description,
        epilog=EXAMPLES[examples or name]
        + ("\n\n" + methods_help() if name == "distill" else ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument(
        "--verbose",
        action="store_true",
        help="show Python tracebacks of errors, and what TensorFlow "
        "prints while loading",
    )
    command.add_argument(
        "--unsafe",
        action="store_true",
        help="load model files with safe_mode=False, running the Python "
        "code of their Lambda layers: only for files you trust",
    )
    return command


def _load(path, args):
    """The model at `path`, loaded safely unless `--unsafe` was given."""
    from kd_keras.saving import load_student

    return load_student(path, safe_mode=not args.unsafe)


def _add_training(command, dataset_default="digits"):
    command.add_argument(
        "--dataset",
        default=dataset_default,
        help=f"dataset name or .npz file (default: {dataset_default})",
    )
    command.add_argument(
        "--epochs",
        type=_positive_int,
        help="training epochs; at most, for students, which stop early on "
        "a validation split of the training data (default: per dataset)",
    )
    command.add_argument(
        "--batch-size",
        type=_positive_int,
        help="batch size (default: per dataset)",
    )
    command.add_argument(
        "--seed", type=int, default=0, help="random seed (default: 0)"
    )
    command.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs"
    )


def _add_distillation(command):
    command.add_argument(
        "--temperature",
        type=_positive_float,
        help="softening temperature T (default: 4)",
    )
    command.add_argument(
        "--alpha",
        type=_unit_float,
        help="weight of the hard-label loss (default: 0.1)",
    )


def _add_teacher_average(command):
    command.add_argument(
        "--teacher-average",
        choices=("probabilities", "logits"),
        default="probabilities",
        help="how several teachers are averaged (default: probabilities)",
    )


def _add_patience(command):
    command.add_argument(
        "--patience",
        type=_positive_int,
        help="epochs without a better validation accuracy before a student "
        "stops, keeping its best epoch (default: per dataset)",
    )


def _parser():
    parser = argparse.ArgumentParser(
        prog="kd-keras",
        description="Knowledge distillation for Keras: train small "
        "students from large teachers.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = _command(
        commands,
        "demo",
        "does distillation pay off? a teacher and three student twins",
        "Few labels, many inputs: trains a teacher (or takes --teacher), "
        "then three twins of the student from the same weights: on the "
        "labelled samples alone (scratch), on the teacher's top-class "
        "pseudo-labels, and distilled from the teacher's soft targets. "
        "Each stops on a validation split carved from the training data; "
        "the test set is scored once. Prints the verdict, accuracy, "
        "parameters, file size, latency and teacher agreement; saves each "
        "model as .h5 with a JSON card, and a report with plots.",
    )
    _add_training(demo)
    _add_distillation(demo)
    demo.add_argument(
        "--labels",
        type=_labels,
        help="labelled training samples, or 'all' (default: 1%% of the "
        "training set, at least 5 per class)",
    )
    _add_patience(demo)
    demo.add_argument(
        "--teacher-epochs",
        type=_positive_int,
        help="teacher epochs (default: per dataset, at most --epochs)",
    )
    demo.add_argument(
        "--teacher",
        type=Path,
        help="a trained teacher .h5/.keras file, used instead of training one",
    )
    demo.add_argument(
        "--models-dir",
        default="saved_models",
        help="folder of the .h5 files (default: saved_models)",
    )
    demo.add_argument(
        "--report-dir", help="folder of the report (default: runs/demo_<data>)"
    )

    teacher = _command(
        commands,
        "train-teacher",
        "train a built-in teacher",
        "Trains the built-in teacher (mlp or cnn) on a dataset and saves "
        "it as .h5 with a JSON card.",
    )
    _add_training(teacher)
    teacher.add_argument(
        "--architecture",
        choices=("mlp", "cnn"),
        help="default: cnn for images, mlp otherwise",
    )
    teacher.add_argument(
        "--output", required=True, type=Path, help="the .h5 file to write"
    )

    distill = _command(
        commands,
        "distill",
        "distil a student from a teacher",
        "Trains a student (a .h5/.keras file, or a built-in 'mlp'/'cnn') "
        "from a teacher file and saves it as .h5 with a JSON card.",
    )
    distill.add_argument(
        "--teacher",
        action="append",
        default=[],
        type=Path,
        help="the teacher's .h5/.keras file; repeat for an ensemble of "
        "teachers (not with --method dml)",
    )
    _add_teacher_average(distill)
    distill.add_argument(
        "--student", required=True, help="a .h5/.keras file, or mlp or cnn"
    )
    _add_training(distill)
    _add_distillation(distill)
    _add_patience(distill)
    distill.add_argument(
        "--method",
        choices=list(methods.REGISTRY),
        default="kd",
        help="distillation method (default: kd)",
    )
    distill.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument of the method's loss, or its term's weight; "
        "repeat for several",
    )
    distill.add_argument(
        "--teacher-store",
        type=Path,
        help="a folder written by `kd-keras store build` for this teacher "
        "and dataset: the teacher's outputs are read from it instead of "
        "computed",
    )
    distill.add_argument("--output", required=True, type=Path)

    tune = _command(
        commands,
        "tune",
        "search T, alpha and the learning rate with KerasTuner",
        "Diagnoses the pair first (the teacher's validation accuracy "
        "against a student trained alone, and how much its soft targets "
        "say at each T), then searches the distillation settings with "
        "KerasTuner: every trial starts from the same student, trains from "
        "the teacher's outputs computed once for the whole search, and is "
        "scored on a validation split of the training data. Writes "
        "diagnosis.txt, trials.csv, a T x alpha heat-map and the search's "
        "progress to the run folder, saves the best student as .h5 with "
        "its card, and prints its test accuracy next to the scratch "
        "twin's. Run again, an interrupted search resumes.",
    )
    tune.add_argument(
        "--teacher",
        action="append",
        required=True,
        type=Path,
        help="the teacher's .h5/.keras file; repeat for an ensemble",
    )
    tune.add_argument(
        "--student", required=True, help="a .h5/.keras file, or mlp or cnn"
    )
    _add_training(tune)
    _add_patience(tune)
    tune.add_argument(
        "--trials",
        type=_positive_int,
        default=10,
        help="number of trials; hyperband sets its own (default: 10)",
    )
    tune.add_argument(
        "--tuner",
        choices=("random", "bayesian", "hyperband"),
        default="random",
        help="KerasTuner's search algorithm (default: random)",
    )
    tune.add_argument(
        "--method",
        action="append",
        choices=[n for n, m in methods.METHODS.items() if not m.required],
        help="a method to search; repeat for several (default: kd)",
    )
    tune.add_argument(
        "--run-dir", help="the run folder (default: runs/tune_<dataset>)"
    )
    tune.add_argument("--output", required=True, type=Path)
    tune.set_defaults(teacher_average="probabilities")

    store = commands.add_parser(
        "store",
        help="teacher outputs on disk, computed once",
        description="A store of a teacher's outputs on a dataset's "
        "training split, which later runs read instead of running the "
        "teacher (kd-keras distill --teacher-store).",
        epilog=EXAMPLES["store"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build = _command(
        store.add_subparsers(dest="store_command", required=True),
        "build",
        "write a teacher's outputs to a folder",
        "Runs the teacher once over the training split that `kd-keras "
        "distill` trains on (the validation split carved out) and writes "
        "its outputs, with the samples, to a folder of shards and a "
        "manifest. An interrupted build resumes when run again.",
        examples="store",
    )
    build.add_argument(
        "--teacher",
        action="append",
        required=True,
        type=Path,
        help="the teacher's .h5/.keras file; repeat for an ensemble",
    )
    _add_teacher_average(build)
    build.add_argument("--dataset", default="digits")
    build.add_argument(
        "--dtype",
        choices=("float16", "float32"),
        default="float16",
        help="of the stored outputs (default: float16)",
    )
    build.add_argument(
        "--top-k",
        type=_positive_int,
        help="logits kept per sample, for softmax-based methods (default: all)",
    )
    build.add_argument(
        "--teacher-layer",
        action="append",
        default=[],
        help="a teacher layer whose outputs a feature method reads; repeat "
        "for several",
    )
    build.add_argument(
        "--batch-size",
        type=_positive_int,
        default=256,
        help="samples per teacher call (default: 256)",
    )
    build.add_argument("--output", required=True, type=Path)
    build.add_argument(
        "--overwrite", action="store_true", help="replace an existing store"
    )

    evaluate = _command(
        commands,
        "evaluate",
        "measure a saved model",
        "Prints a model's test accuracy, parameters, file size and latency, "
        "and its agreement with a teacher if one is given. A .tflite file, "
        "as `kd-keras export` writes, is run by the TFLite interpreter.",
    )
    evaluate.add_argument("model", type=Path)
    evaluate.add_argument("--dataset", default="digits")
    evaluate.add_argument("--teacher", type=Path)

    report_command = _command(
        commands,
        "report",
        "redraw the report of a run",
        "Draws report.md and the PNG plots of a run folder again from its "
        "run.json; existing ones are replaced only with --overwrite.",
    )
    report_command.add_argument("run_dir", type=Path)
    report_command.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing report.md and plots",
    )

    export = _command(
        commands,
        "export",
        "convert a model for deployment",
        "Converts a model to TensorFlow Lite, optionally quantized, and "
        "compares the converted model's test accuracy with the Keras one.",
    )
    export.add_argument("model", type=Path)
    export.add_argument("--format", choices=("tflite",), default="tflite")
    export.add_argument(
        "--quantize",
        default="none",
        choices=("none", "float16", "dynamic", "int8"),
    )
    export.add_argument(
        "--dataset",
        default="digits",
        help="test data, and int8 calibration data",
    )
    export.add_argument("--output", required=True, type=Path)
    export.add_argument("--overwrite", action="store_true")
    return parser


def _measure(model, path, x_test, y_test):
    from kd_keras.app import evaluation

    return {
        "test_accuracy": evaluation.accuracy(model, x_test, y_test),
        "parameters": model.count_params(),
        "file_bytes": path.stat().st_size,
        "latency_ms": evaluation.latency_ms(model, x_test),
    }


def _print_measures(name, measures):
    print(
        f"{name}: test accuracy {measures['test_accuracy']:.4f}, "
        f"{measures['parameters']:,} parameters, "
        f"{measures['file_bytes'] / 1024:,.0f} KiB, "
        f"{measures['latency_ms']:.3f} ms/sample"
    )


def _demo(args):
    from kd_keras.app import demo, report

    teacher = _load(args.teacher, args) if args.teacher else None
    record = demo.run(
        args.dataset,
        teacher=teacher,
        models_dir=args.models_dir,
        report_dir=args.report_dir,
        seed=args.seed,
        overwrite=args.overwrite,
        labels=args.labels,
        teacher_epochs=args.teacher_epochs,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        alpha=args.alpha,
        temperature=args.temperature,
    )
    _, report_dir = demo.output_paths(
        args.dataset, args.models_dir, args.report_dir
    )
    print()
    print(report.table(record))
    print()
    print(record["verdict"])
    print(
        f"\nModels and cards in {args.models_dir}/; report, plots and "
        f"run.json in {report_dir}/."
    )


def _save_with_card(model, args, data, method, hyperparameters):
    from kd_keras.app import cards
    from kd_keras.saving import save_model

    x_test, y_test = data[1]
    path = save_model(model, args.output, overwrite=args.overwrite)
    measures = _measure(model, path, x_test, y_test)
    card = cards.make_card(
        model,
        path,
        args.dataset,
        measures["test_accuracy"],
        method,
        hyperparameters,
        args.seed,
    )
    cards.write_json(cards.card_path(path), card, overwrite=args.overwrite)
    _print_measures(str(path), measures)


def _check_outputs_free(args):
    from kd_keras.app import cards
    from kd_keras.saving import check_extension

    check_extension(args.output)
    for path in (args.output, cards.card_path(args.output)):
        if path.exists() and not args.overwrite:
            raise FileExistsError(
                f"{path} exists; pass --overwrite to replace it."
            )


def _train_teacher(args):
    from kd_keras import datasets
    from kd_keras.app import demo

    _check_outputs_free(args)
    data = datasets.load(args.dataset)
    architecture = args.architecture or demo.default_architecture(data[0][0])
    settings = demo.settings_for(
        architecture, teacher_epochs=args.epochs, batch_size=args.batch_size
    )
    epochs, batch_size = settings["teacher_epochs"], settings["batch_size"]
    train, validation, _ = demo.split(data, None, args.seed)
    teacher = demo.train_teacher(
        (train, validation),
        architecture,
        epochs,
        batch_size,
        args.seed,
        verbose=1,
    )
    _save_with_card(
        teacher,
        args,
        data,
        "supervised",
        {
            "architecture": architecture,
            "epochs": epochs,
            "batch_size": batch_size,
        },
    )


def _method_parameters(params):
    parsed = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param takes KEY=VALUE. Received: {item!r}")
        if key == "temperature":
            raise ValueError(
                "Set the temperature with --temperature, not --param: it "
                "applies to every method that has one."
            )
        parsed[key] = methods.parse_value(value)
    return parsed


def _check_method(args, parameters):
    """Bad --method/--param/--teacher values fail before data is loaded."""
    method = methods.REGISTRY[args.method]
    if method.is_scheme:
        methods.check_scheme(args.method, parameters)
    else:
        methods.distillation_losses(args.method, **parameters)
    if method.teacher != bool(args.teacher):
        raise ValueError(
            f"{args.method} trains students together without a teacher: "
            "drop --teacher."
            if args.teacher
            else f"--method {args.method} needs --teacher."
        )


def _teacher(args, x_train, y_train):
    """The `--teacher` model, or the ensemble of several."""
    from kd_keras import datasets, teachers

    if not args.teacher:
        return None
    loaded = [_load(path, args) for path in args.teacher]
    for path, teacher in zip(args.teacher, loaded, strict=True):
        datasets.check_fits(teacher, f"teacher {path}", x_train, y_train)
    if len(loaded) == 1:
        return loaded[0]
    if len({teacher.name for teacher in loaded}) < len(loaded):
        for i, teacher in enumerate(loaded):
            teacher.name = f"teacher_{i}_{teacher.name}"
    return teachers.ensemble(loaded, average=args.teacher_average)


def _student(args, data):
    """The `--student`: a new built-in model, or a file; checked against
    the training data."""
    from kd_keras import datasets
    from kd_keras.app import demo

    if args.student in ("mlp", "cnn"):
        student = demo.new_student(data, args.student, args.seed)
    else:
        student = _load(args.student, args)
    datasets.check_fits(student, "student", *data[0])
    return student


def _distill(args):
    from kd_keras import datasets
    from kd_keras.app import demo

    _check_outputs_free(args)
    parameters = _method_parameters(args.param)
    _check_method(args, parameters)
    cache = "auto"
    if args.teacher_store:
        from kd_keras.teacher_outputs import TeacherStore

        cache = TeacherStore(args.teacher_store)
    data = datasets.load(args.dataset)
    (x_train, y_train), _ = data
    teacher = _teacher(args, x_train, y_train)
    student = _student(args, data)
    defaults = demo.settings_for(
        demo.default_architecture(x_train),
        temperature=args.temperature,
        alpha=args.alpha,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
    )
    settings = {
        "method": args.method,
        **{
            key: defaults[key]
            for key in ("temperature", "alpha", "epochs", "patience")
        },
        "batch_size": defaults["batch_size"],
        "parameters": parameters,
        "teacher": [str(path) for path in args.teacher],
    }
    train, validation, _ = demo.split(data, None, args.seed)
    if methods.REGISTRY[args.method].is_scheme:
        import keras

        # Mutual learning logs each student's accuracy under its name.
        monitor = "val_accuracy"
        if args.method == "dml":
            monitor = f"val_{student.name}_accuracy"
        keras.utils.set_random_seed(args.seed)
        methods.train_scheme(
            args.method,
            teacher,
            student,
            *train,
            alpha=settings["alpha"],
            temperature=settings["temperature"],
            fit_kwargs={
                "epochs": settings["epochs"],
                "batch_size": settings["batch_size"],
                "validation_data": validation,
                "callbacks": [
                    demo.early_stopping(settings["patience"], monitor)
                ],
                "verbose": 1,
            },
            load=lambda path: _load(path, args),
            cache=cache,
            **parameters,
        )
    else:
        losses, weights = methods.distillation_losses(
            args.method, settings["temperature"], **parameters
        )
        demo.distill(
            teacher,
            student,
            (train, validation),
            settings,
            args.seed,
            distillation_loss=losses,
            distillation_loss_weights=weights,
            cache=cache,
            verbose=1,
        )
    _save_with_card(student, args, data, args.method, settings)


def _store_build(args):
    from kd_keras import datasets
    from kd_keras.app import demo
    from kd_keras.teacher_outputs import TeacherStore

    data = datasets.load(args.dataset)
    teacher = _teacher(args, *data[0])
    train, _, _ = demo.split(data, None, seed=0)
    store = TeacherStore.build(
        teacher,
        train,
        args.output,
        dtype=args.dtype,
        top_k=args.top_k,
        teacher_layers=args.teacher_layer,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
    )
    print(store)


def _tune(args):
    from kd_keras import datasets
    from kd_keras.app import tune

    _check_outputs_free(args)
    data = datasets.load(args.dataset)
    (x_train, y_train), _ = data
    teacher = _teacher(args, x_train, y_train)
    student = _student(args, data)
    run_dir = Path(
        args.run_dir or Path("runs") / f"tune_{Path(args.dataset).stem}"
    )
    result = tune.run(
        teacher,
        student,
        data,
        run_dir,
        trials=args.trials,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        tuner=args.tuner,
        methods=args.method or ["kd"],
        seed=args.seed,
        overwrite=args.overwrite,
    )
    best, accuracies = result["best"], result["accuracies"]
    settings = dict(best.hyperparameters)
    _save_with_card(
        best.student,
        args,
        data,
        settings.pop("method"),
        {
            **settings,
            "validation_accuracy": round(best.validation_accuracy, 4),
            "tuner": args.tuner,
            "trials": len(best.trials),
            "teacher": [str(path) for path in args.teacher],
        },
    )
    gain = 100 * (accuracies["best"] - accuracies["scratch"])
    print(
        f"\nBest of {len(best.trials)} trials: "
        + ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in best.hyperparameters.items()
        )
        + f" (validation accuracy {best.validation_accuracy:.4f}).\n"
        f"Test accuracy: tuned student {accuracies['best']:.4f}, scratch "
        f"twin {accuracies['scratch']:.4f} ({gain:+.1f} points), teacher "
        f"{accuracies['teacher']:.4f}.\n"
        f"Diagnosis, trials.csv and plots in {run_dir}/."
    )


def _evaluate(args):
    from kd_keras import datasets
    from kd_keras.app import evaluation

    if args.model.suffix == ".tflite":
        return _evaluate_tflite(args)
    model = _load(args.model, args)
    (_, _), (x_test, y_test) = datasets.load(args.dataset)
    datasets.check_fits(model, "model", x_test, y_test)
    measures = _measure(model, args.model, x_test, y_test)
    _print_measures(str(args.model), measures)
    if args.teacher:
        teacher = _load(args.teacher, args)
        datasets.check_fits(teacher, "teacher", x_test, y_test)
        agreement = evaluation.agreement(teacher, model, x_test)
        print(f"agreement with {args.teacher}: {agreement:.4f}")


def _evaluate_tflite(args):
    """`evaluate` of a `.tflite` file, as `kd-keras export` writes them."""
    import numpy as np

    from kd_keras import datasets, export
    from kd_keras.app import evaluation

    flatbuffer = export.read_tflite(args.model)
    (_, _), (x_test, y_test) = datasets.load(args.dataset)
    outputs = export.tflite_predict(flatbuffer, x_test)
    if outputs.shape[-1] != datasets.num_classes(y_test):
        raise ValueError(
            f"The model has {outputs.shape[-1]} outputs, but the dataset "
            f"has {datasets.num_classes(y_test)} classes."
        )
    classes = np.argmax(outputs, -1)
    print(
        f"{args.model}: test accuracy {np.mean(classes == y_test):.4f}, "
        f"{len(flatbuffer) / 1024:,.0f} KiB, "
        f"{export.tflite_latency_ms(flatbuffer, x_test):.3f} ms/sample "
        "(TFLite, one thread)"
    )
    if args.teacher:
        teacher = _load(args.teacher, args)
        datasets.check_fits(teacher, "teacher", x_test, y_test)
        agreement = np.mean(
            evaluation.predict_classes(teacher, x_test) == classes
        )
        print(f"agreement with {args.teacher}: {agreement:.4f}")


def _report(args):
    from kd_keras.app import report

    report.read_run(args.run_dir)  # a folder without run.json fails first
    taken = [str(p) for p in report.report_paths(args.run_dir) if p.exists()]
    if taken and not args.overwrite:
        raise FileExistsError(
            f"{', '.join(taken)} exist(s); pass --overwrite to replace them."
        )
    for path in report.write_report(args.run_dir, overwrite=args.overwrite):
        print(path)


def _export(args):
    from kd_keras import datasets, export
    from kd_keras.app import evaluation

    if args.output.exists() and not args.overwrite:
        raise FileExistsError(
            f"{args.output} exists; pass --overwrite to replace it."
        )
    model = _load(args.model, args)
    (x_train, _), (x_test, y_test) = datasets.load(args.dataset)
    datasets.check_fits(model, "model", x_test, y_test)
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


COMMANDS = {
    "demo": _demo,
    "train-teacher": _train_teacher,
    "distill": _distill,
    "tune": _tune,
    "store": _store_build,
    "evaluate": _evaluate,
    "report": _report,
    "export": _export,
}


def _import_tensorflow(quiet):
    """Imports TensorFlow with its info and warning logs off, and, if
    `quiet`, without the lines it writes to stderr while it starts.

    TF_CPP_MIN_LOG_LEVEL must be set before TensorFlow loads, and does not
    silence the "Could not find cuda drivers" lines of its CUDA stub
    (tensorflow/tensorflow#100442) nor, at level 2, the "failed call to
    cuInit" error of its first look for devices: both go to file
    descriptor 2, which points to /dev/null while TensorFlow loads and
    lists its devices.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not quiet or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    stderr = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(stderr, 2)
        os.close(stderr)


def main(argv=None):
    """Entry point of `kd-keras`; returns the exit status."""
    # --help and usage errors exit here, before TensorFlow is loaded.
    args = _parser().parse_args(argv)
    _import_tensorflow(quiet=not args.verbose)
    try:
        COMMANDS[args.command](args)
    except (OSError, ValueError, TypeError) as error:
        if args.verbose:
            raise
        message = " ".join(str(error).split())
        print(f"kd-keras {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
