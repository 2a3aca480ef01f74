"""The models of a command: the teachers and student it loads or builds,
and the student it saves with its card."""

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


def teacher(args, x_train, y_train):
    """The `--teacher` model, the ensemble of several, or `None`."""
    from kd_keras import teachers
    from kd_keras.validation import check_fits

    if not args.teacher:
        return None
    loaded = [load(path, args) for path in args.teacher]
    for path, model in zip(args.teacher, loaded, strict=True):
        check_fits(model, f"teacher {path}", x_train, y_train)
    if len(loaded) == 1:
        return loaded[0]
    if len({model.name for model in loaded}) < len(loaded):
        for i, model in enumerate(loaded):
            model.name = f"teacher_{i}_{model.name}"
    return teachers.ensemble(loaded, average=args.teacher_average)


def student(args, data):
    """The `--student`: a new built-in model, or a file; checked against
    the training data."""
    from kd_keras.app import protocol
    from kd_keras.validation import check_fits

    if args.student in ("mlp", "cnn"):
        model = protocol.new_student(data, args.student, args.seed)
    else:
        model = load(args.student, args)
    check_fits(model, "student", *data[0])
    return model


def check_output_free(args):
    """Refuses `--output` (and its card) if they exist, unless
    `--overwrite`, before anything is trained."""
    from kd_keras.app import cards

    check_extension(args.output)
    check_free(
        [args.output, cards.card_path(args.output)], args.overwrite, OVERWRITE
    )


def measure(model, path, x_test, y_test):
    """Test accuracy, parameters, file size and latency of a saved model."""
    from kd_keras.app import evaluation

    return {
        "test_accuracy": evaluation.accuracy(model, x_test, y_test),
        "parameters": model.count_params(),
        "file_bytes": path.stat().st_size,
        "latency_ms": evaluation.latency_ms(model, x_test),
    }


def print_measures(name, measures):
    print(
        f"{name}: test accuracy {measures['test_accuracy']:.4f}, "
        f"{measures['parameters']:,} parameters, "
        f"{measures['file_bytes'] / 1024:,.0f} KiB, "
        f"{measures['latency_ms']:.3f} ms/sample"
    )


def save_with_card(model, args, data, method, hyperparameters):
    """Saves `model` to `--output` with its card, and prints its measures
    on the test set."""
    from kd_keras.app import cards
    from kd_keras.saving import save_model

    x_test, y_test = data[1]
    path = save_model(model, args.output, overwrite=args.overwrite)
    measures = measure(model, path, x_test, y_test)
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
    print_measures(str(path), measures)
