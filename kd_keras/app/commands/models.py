"""The models of a command: the teachers and student it loads or builds,
and the student it saves with its card."""

from pathlib import Path

from kd_keras.files import check_extension, check_free

OVERWRITE = "pass --overwrite"


def load(path, args):
    """The model at `path`, loaded safely unless `--unsafe` was given."""
    from kd_keras.distiller import Distiller
    from kd_keras.saving import load_student

    model = load_student(path, safe_mode=not args.unsafe)
    if isinstance(model, Distiller):
        raise ValueError(
            f"{path} holds a whole Distiller; pass the student file instead "
            "(written by Distiller.save_student)."
        )
    return model


def teacher(args, data):
    """The `--teacher` model, the ensemble of several, or `None`; checked
    against `data` (an `app.data.Data`), and against the pixels it is fed
    (`check_inputs`)."""
    from kd_keras import teachers

    if not args.teacher:
        return None
    loaded = [load(path, args) for path in args.teacher]
    for path, model in zip(args.teacher, loaded, strict=True):
        data.check_fits(model, f"teacher {path}")
        check_inputs(model, f"teacher {path}", data)
    if len(loaded) == 1:
        return loaded[0]
    if len({model.name for model in loaded}) < len(loaded):
        for i, model in enumerate(loaded):
            model.name = f"teacher_{i}_{model.name}"
    return teachers.ensemble(loaded, average=args.teacher_average)


def student(args, data):
    """The `--student`: a new built-in model or Keras Application, or a
    file; checked against `data`."""
    from kd_keras import models

    if args.student in models.ARCHITECTURES:
        model = data.new_model(args.student, "student", args.seed)
    elif args.student in models.APPLICATIONS:
        if data.pixels != 255 or len(data.input_shape) != 3:
            raise ValueError(
                f"--student {args.student} takes images of pixels in "
                f"[0, 255], such as a folder of images; {data.name} holds "
                f"samples of shape {data.input_shape}"
                + ("" if data.pixels else " scaled to [0, 1]")
                + ". Use mlp or cnn, or a folder of images."
            )
        import keras

        keras.utils.set_random_seed(args.seed)
        model = models.application(
            args.student,
            data.input_shape,
            data.classes,
            weights=None if args.weights == "none" else args.weights,
        )
    elif Path(args.student).suffix in MODEL_SUFFIXES:
        model = load(args.student, args)
    else:
        raise ValueError(
            "--student must be a model file (.keras, .h5), mlp, cnn or a "
            f"Keras Application: {', '.join(models.APPLICATIONS)}. "
            f"Received: {args.student!r}"
        )
    data.check_fits(model, "student")
    return model


def check_inputs(model, role, data):
    """Warns, on stderr, when `model` scores about chance on a labelled
    sample of `data`: it was likely trained on other pixels (0-255 against
    [0, 1]) or another class order."""
    import sys

    from kd_keras.app import evaluation

    x, y = data.labelled_sample()
    accuracy = evaluation.accuracy(model, x, y)
    chance = 1 / data.classes
    if accuracy < 1.5 * chance:
        print(
            f"kd-keras: warning: the {role} scores {accuracy:.3f} on {len(y)} "
            f"labelled samples of {data.name}, about chance ({chance:.3f}): "
            "is it fed the inputs it was trained on (pixels in [0, 255] "
            "or [0, 1], the same classes in the same order)?",
            file=sys.stderr,
        )
    return accuracy


MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def check_file(path, flag=None, suffixes=MODEL_SUFFIXES):
    """Raises unless `path` is a model file of one of `suffixes`; `flag`
    (`"--teacher"`) names where it was given. Loads no TensorFlow."""
    given = f" ({flag})" if flag else ""
    if path.is_dir():
        raise ValueError(f"{str(path)!r}{given} is a folder, not a model file.")
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {str(path)!r}{given}.")
    if path.suffix not in suffixes:
        raise ValueError(
            f"{str(path)!r}{given} is no model file: its name must end in "
            f"{', '.join(suffixes)}."
        )


def check_inputs_exist(args):
    """Raises unless every model file the command reads is there: the
    `--teacher` files, a `--student` file, a `--teacher-store` folder."""
    teachers = getattr(args, "teacher", None) or []
    for path in teachers if isinstance(teachers, list) else [teachers]:
        check_file(path, "--teacher")
    student = getattr(args, "student", None)
    # A name (mlp, MobileNetV3Small) is checked once Keras is loaded.
    if student is not None and Path(student).suffix in MODEL_SUFFIXES:
        check_file(Path(student), "--student")
    store = getattr(args, "teacher_store", None)
    if store is not None and not store.is_dir():
        raise FileNotFoundError(
            f"No folder at {str(store)!r} (--teacher-store): build one with "
            "kd-keras store build."
        )


def check_output_free(args):
    """Refuses `--output` (and its card) if they exist, unless
    `--overwrite`, or if its folder does not exist, before anything is
    trained. Loads no TensorFlow."""
    from kd_keras.app import cards

    check_extension(args.output)
    folder = args.output.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"No folder {str(folder)!r} to write {args.output.name} in: "
            "create it first."
        )
    check_free(
        [args.output, cards.card_path(args.output)], args.overwrite, OVERWRITE
    )


def measure(model, path, test):
    """Test accuracy, parameters, file size and latency of a saved model;
    `test` is `(x, y)` or batches."""
    from kd_keras.app import evaluation

    x, y = test if isinstance(test, tuple) else (test, None)
    return {
        "test_accuracy": evaluation.accuracy(model, x, y),
        "parameters": model.count_params(),
        "file_bytes": path.stat().st_size,
        "latency_ms": evaluation.latency_ms(model, x),
    }


def print_measures(name, measures):
    accuracy = measures["test_accuracy"]
    print(
        f"{name}: "
        + (
            "no test set, "
            if accuracy is None
            else f"test accuracy {accuracy:.4f}, "
        )
        + f"{measures['parameters']:,} parameters, "
        f"{measures['file_bytes'] / 1024:,.0f} KiB"
        + (
            ""
            if measures["latency_ms"] is None
            else f", {measures['latency_ms']:.3f} ms/sample"
        )
    )


def save_with_card(model, args, data, method, hyperparameters):
    """Saves `model` to `--output` with its card, and prints its measures
    on the test set of `data` (a folder without `test/` has none)."""
    from kd_keras.app import cards
    from kd_keras.saving import save_model

    path = save_model(model, args.output, overwrite=args.overwrite)
    if data.test is None:
        measures = {
            "test_accuracy": None,
            "parameters": model.count_params(),
            "file_bytes": path.stat().st_size,
            "latency_ms": None,
        }
    else:
        measures = measure(model, path, data.test)
    card = cards.make_card(
        model,
        path,
        data.name,
        measures["test_accuracy"],
        method,
        hyperparameters,
        args.seed,
    )
    card_path = cards.card_path(path)
    cards.write_json(card_path, card, overwrite=args.overwrite)
    print_measures(str(path), measures)
    print(f"card: {card_path}")


def print_teacher(teacher, args, data, student):
    """The teacher's test accuracy and the student's agreement with it,
    under the student's measures."""
    from kd_keras.app import evaluation

    if data.test is None or teacher is None:
        return
    x, y = data.test if isinstance(data.test, tuple) else (data.test, None)
    names = ", ".join(map(str, args.teacher))
    print(
        f"teacher {names}: test accuracy "
        f"{evaluation.accuracy(teacher, x, y):.4f}; the student agrees "
        f"with it on {evaluation.agreement(teacher, student, x):.1%} of the "
        "test samples"
    )
