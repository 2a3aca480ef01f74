"""The main job: a student that distillation makes better than its twin.

The scenario is the one teams meet when they compress a model they trust:
a trained teacher, plenty of inputs, few of them labelled. Three twins of
one student start from the same weights and train under the same rule:

- scratch: the labelled samples alone, all it can use without a teacher;
- pseudo-labels: every input, labelled with the teacher's top class (the
  true label where known): what the teacher's hard predictions give;
- distilled: every input through the `Distiller`: the teacher's softened
  outputs, and the label where known (the others are marked
  `kd_keras.labels.UNLABELLED`).

A validation split is carved from the training data before anything
trains; each student stops when its validation accuracy stops improving
and keeps its best epoch; the test set is scored once, at the end. Each
model is saved as `.h5` with a JSON card; the run's numbers, plots and its
verdict go to a report folder.
"""

import math
import time
from pathlib import Path

import keras
import numpy as np

from kd_keras import datasets, labels, models
from kd_keras.app import cards, evaluation, report
from kd_keras.distiller import Distiller
from kd_keras.saving import save_model

ROLES = report.ROLES
# Each student trains up to `epochs` epochs of the training set, stopping
# `patience` epochs after its best validation accuracy. T and alpha were
# chosen on the validation split by benchmarks/payoff.py.
DEFAULTS = {
    "mlp": dict(
        teacher_epochs=30,
        epochs=200,
        patience=20,
        batch_size=32,
        alpha=0.1,
        temperature=4.0,
    ),
    "cnn": dict(
        teacher_epochs=8,
        epochs=40,
        patience=5,
        batch_size=128,
        alpha=0.1,
        temperature=4.0,
    ),
}
# The split of the validation data does not change with `seed`.
_SPLIT_SEED = 0


def settings_for(architecture, **overrides):
    """`DEFAULTS[architecture]` updated with the overrides that are given.

    A given `epochs` caps the default `teacher_epochs` too, so that a short
    run (`kd-keras demo --epochs 3`) is short throughout; a given
    `teacher_epochs` is kept.

    Args:
        architecture: `"mlp"` or `"cnn"`.
        **overrides: Settings; `None` keeps the default.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    settings = {**DEFAULTS[architecture], **given}
    if "epochs" in given and "teacher_epochs" not in given:
        settings["teacher_epochs"] = min(
            settings["teacher_epochs"], given["epochs"]
        )
    return settings


def default_architecture(x):
    """`"mlp"` for feature vectors, `"cnn"` for images."""
    return "cnn" if x.ndim == 4 else "mlp"


def default_labels(y):
    """Labelled samples of the demo: 1% of `y`, at least 5 per class."""
    return max(5 * datasets.num_classes(y), math.ceil(0.01 * len(y)))


def validation_fraction(samples):
    """Share of the training data kept for validation: 20%, 10% from 10k.

    Small datasets keep more, so that early stopping and the choice of
    settings are not decided by a handful of samples.
    """
    return 0.2 if samples < 10_000 else 0.1


def split(data, labelled, seed):
    """Carves the validation data and picks the labelled samples.

    Args:
        data: `((x_train, y_train), (x_test, y_test))`.
        labelled: How many training samples keep their label, the same
            number per class (rounded down); `None` or a number at least
            the training set's size keeps them all.
        seed: Seed of the choice of labelled samples.

    Returns:
        `((x, y), (x_val, y_val), indices)`: the training data left after
        the validation split, a fixed `validation_fraction` of the training
        data, stratified, and the indices in `x` of the labelled samples.
    """
    (x, y), _ = data
    rng = np.random.default_rng(_SPLIT_SEED)
    classes = datasets.num_classes(y)
    fraction = validation_fraction(len(y))
    validation = np.concatenate(
        [
            rng.permutation(np.flatnonzero(y == c))[
                : round(fraction * np.sum(y == c))
            ]
            for c in range(classes)
        ]
    )
    keep = np.setdiff1d(np.arange(len(y)), validation)
    x_train, y_train = x[keep], y[keep]
    if labelled is None or labelled >= len(y_train):
        return (
            (x_train, y_train),
            (x[validation], y[validation]),
            np.arange(len(y_train)),
        )
    if labelled < classes:
        raise ValueError(
            f"labels must be at least the number of classes ({classes}), "
            f"one labelled sample per class. Received: labels={labelled}"
        )
    rng = np.random.default_rng(seed)
    per_class = labelled // classes
    chosen = np.concatenate(
        [
            rng.choice(
                np.flatnonzero(y_train == c),
                min(per_class, np.sum(y_train == c)),
                replace=False,
            )
            for c in range(classes)
        ]
    )
    return (x_train, y_train), (x[validation], y[validation]), np.sort(chosen)


def _hard_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def early_stopping(patience, monitor="val_accuracy"):
    """Stops when validation accuracy (`monitor`) has not improved for
    `patience` epochs, and restores the best epoch's weights."""
    return keras.callbacks.EarlyStopping(
        monitor, patience=patience, mode="max", restore_best_weights=True
    )


def _fit(model, x, y, validation, settings, seed, verbose):
    keras.utils.set_random_seed(seed)
    return model.fit(
        x,
        y,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        validation_data=validation,
        callbacks=[early_stopping(settings["patience"])],
        verbose=verbose,
    )


def train_teacher(
    data, architecture=None, epochs=30, batch_size=64, seed=0, verbose=0
):
    """Trains a built-in teacher on `data` and returns it."""
    (x_train, y_train), validation = data
    keras.utils.set_random_seed(seed)
    teacher = models.build(
        architecture or default_architecture(x_train),
        "teacher",
        x_train.shape[1:],
        datasets.num_classes(y_train),
    )
    teacher.compile("adam", _hard_loss(), metrics=["accuracy"])
    teacher.fit(
        x_train,
        y_train,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation,
        verbose=verbose,
    )
    return teacher


def new_student(data, architecture=None, seed=0):
    """A built-in student for `data`, initialised from `seed`."""
    x_train, y_train = data[0]
    keras.utils.set_random_seed(seed)
    return models.build(
        architecture or default_architecture(x_train),
        "student",
        x_train.shape[1:],
        datasets.num_classes(y_train),
    )


def distill(
    teacher,
    student,
    data,
    settings,
    seed=0,
    distillation_loss=None,
    distillation_loss_weights=None,
    cache="auto",
    verbose=0,
):
    """Trains `student` from `teacher`, stopping early on validation data.

    Args:
        teacher: The trained teacher.
        student: The student to train.
        data: `((x, y), (x_val, y_val))`.
        settings: `epochs` (at most), `patience`, `batch_size`, `alpha`
            and `temperature`.
        seed: Seed of the data order. Defaults to `0`.
        distillation_loss: A loss or a list of losses; `None` is Hinton KD
            at `settings["temperature"]`. Defaults to `None`.
        distillation_loss_weights: Their weights. Defaults to `None`.
        cache: The `Distiller`'s `cache` (a `TeacherStore` of `(x, y)`).
            Defaults to `"auto"`.
        verbose: Keras' `verbose`. Defaults to `0`.

    Returns:
        The `History`.
    """
    distiller = Distiller(
        teacher,
        student,
        distillation_loss,
        alpha=settings["alpha"],
        temperature=settings["temperature"],
        distillation_loss_weights=distillation_loss_weights,
        cache=cache,
    )
    distiller.compile("adam", metrics=["accuracy"])
    (x, y), validation = data
    return _fit(distiller, x, y, validation, settings, seed, verbose)


def train_student(role, initial, teacher, data, settings, seed=0, verbose=0):
    """Trains one twin: a copy of `initial` named `role`.

    Args:
        role: `"student_scratch"`, `"student_pseudo"` or
            `"student_distilled"`.
        initial: The student with the initial weights (left unchanged).
        teacher: The trained teacher.
        data: `((x, y), (x_val, y_val), labelled)`, as `split` returns it.
        settings: `epochs`, `patience`, `batch_size`, and `alpha` and
            `temperature` for the distilled twin.
        seed: Seed of the data order.
        verbose: Keras' `verbose` for the training.

    Returns:
        `(student, History.history)`.
    """
    (x, y), validation, labelled = data
    student = models.copy_model(initial, role)
    if role == "student_distilled":
        targets = np.full_like(y, labels.UNLABELLED)
        targets[labelled] = y[labelled]
        model = Distiller(
            teacher,
            student,
            alpha=settings["alpha"],
            temperature=settings["temperature"],
        )
        model.compile("adam", metrics=["accuracy"])
    else:
        model = student
        model.compile("adam", _hard_loss(), metrics=["accuracy"])
        if role == "student_scratch":
            # The labelled samples repeated to the training set's size: an
            # epoch is then the same number of steps for every twin.
            repeats = np.resize(labelled, len(x))
            x, targets = x[repeats], y[repeats]
        else:
            targets = evaluation.predict_classes(teacher, x)
            targets[labelled] = y[labelled]
    history = _fit(model, x, targets, validation, settings, seed, verbose)
    return student, history.history


def train_students(teacher, data, settings, seed=0, verbose=0, log=None):
    """Trains the scratch, pseudo-label and distilled twins.

    The pseudo-label twin is left out when every sample is labelled.

    Args:
        teacher: The trained teacher.
        data: `((x, y), (x_val, y_val), labelled)`, as `split` returns it.
        settings: `architecture`, `epochs`, `patience`, `batch_size`,
            `alpha`, `temperature`.
        seed: Seed of the initial weights and the data order.
        verbose: Keras' `verbose` for the training.
        log: Called with one line when each twin is trained (e.g.
            `print`). Defaults to `None`.

    Returns:
        `(students, histories)`: dicts by role.
    """
    train, _, labelled = data
    initial = new_student((train, None), settings["architecture"], seed)
    roles = [role for role in ROLES if role != "teacher"]
    if len(labelled) == len(train[1]):
        roles.remove("student_pseudo")
    students, histories = {}, {}
    for role in roles:
        start = time.perf_counter()
        students[role], histories[role] = train_student(
            role, initial, teacher, data, settings, seed, verbose
        )
        if log:
            curve = histories[role]["val_accuracy"]
            best = int(np.argmax(curve))
            log(
                f"      {ROLES[role]}: validation accuracy "
                f"{curve[best]:.4f} at epoch {best + 1} of {len(curve)} "
                f"({time.perf_counter() - start:.0f} s)"
            )
    return students, histories


def verdict(accuracies):
    """One sentence: did distillation help, by how much, what share of gap.

    Args:
        accuracies: Test accuracy by role: `"teacher"`, `"student_scratch"`,
            `"student_distilled"` and optionally `"student_pseudo"`.
    """
    teacher = accuracies["teacher"]
    scratch = accuracies["student_scratch"]
    distilled = accuracies["student_distilled"]
    # Points as printed: a gain that rounds to 0.0 is no gain.
    gain = round(100 * (distilled - scratch), 1)
    if gain > 0:
        opening = (
            f"Distillation helped: the distilled student scores "
            f"{distilled:.4f} on the test set, {gain:+.1f} points over its "
            f"scratch twin ({scratch:.4f})"
        )
    elif gain < 0:
        opening = (
            f"Distillation hurt: the distilled student scores "
            f"{distilled:.4f} on the test set, {-gain:.1f} points below its "
            f"scratch twin ({scratch:.4f})"
        )
    else:
        opening = (
            f"Distillation made no difference: the distilled student scores "
            f"{distilled:.4f} on the test set, its scratch twin "
            f"{scratch:.4f}"
        )
    if teacher <= scratch:
        opening += (
            f"; the teacher ({teacher:.4f}) is no better than the scratch "
            "student, so there was no gap to close"
        )
    elif gain > 0 and distilled > teacher:
        opening += f", overtaking the teacher ({teacher:.4f})"
    elif gain > 0:
        share = (distilled - scratch) / (teacher - scratch)
        opening += (
            f", closing {100 * share:.0f}% of the gap to the teacher "
            f"({teacher:.4f})"
        )
    else:
        opening += f"; the teacher scores {teacher:.4f}"
    pseudo = accuracies.get("student_pseudo")
    if pseudo is None:
        return opening + "."
    return (
        f"{opening}. The teacher's top-class pseudo-labels alone gave "
        f"{pseudo:.4f} ({100 * (distilled - pseudo):+.1f} points for the "
        "soft targets)."
    )


def output_paths(dataset, models_dir, report_dir):
    """Model paths by role and the run folder of a demo on `dataset`."""
    prefix = f"demo_{Path(dataset).stem}"
    paths = {role: Path(models_dir) / f"{prefix}_{role}.h5" for role in ROLES}
    return paths, Path(report_dir or Path("runs") / prefix)


def _check_free(paths, overwrite):
    taken = [str(p) for p in paths if p.exists()]
    if taken and not overwrite:
        raise FileExistsError(
            f"{', '.join(taken)} exist(s); pass --overwrite to replace, or "
            "choose other output folders."
        )


def run(
    dataset="digits",
    models_dir="saved_models",
    report_dir=None,
    seed=0,
    overwrite=False,
    verbose=0,
    teacher=None,
    **overrides,
):
    """Runs the demo on `dataset`; returns the run's record (`run.json`).

    Args:
        dataset: A name of `kd_keras.datasets.NAMES` or a `.npz` path.
            Defaults to `"digits"`.
        models_dir: Folder of the `.h5` files and cards. Defaults to
            `"saved_models"`.
        report_dir: Folder of `run.json`, `report.md` and the plots.
            Defaults to `runs/demo_<dataset>`.
        seed: Seed of the labelled samples, the initial weights and the
            data order. Defaults to `0`.
        overwrite: Whether existing outputs may be replaced. Defaults to
            `False`: they are refused before any training.
        verbose: Keras' `verbose` for the training. Defaults to `0`.
        teacher: A trained teacher `keras.Model` to use instead of training
            one. Defaults to `None`.
        **overrides: `labels` (labelled training samples, default
            `default_labels`; at least the training set's size for all),
            `teacher_epochs`, `epochs`, `patience`, `batch_size`, `alpha`,
            `temperature`, `architecture`; `None` keeps the default.
    """
    arrays = datasets.load(dataset)
    x_test, y_test = arrays[1]
    architecture = overrides.pop("architecture", None) or (
        default_architecture(arrays[0][0])
    )
    labelled = overrides.pop("labels", None) or default_labels(arrays[0][1])
    settings = dict(
        settings_for(architecture, **overrides),
        architecture=architecture,
        seed=seed,
    )
    paths, report_dir = output_paths(dataset, models_dir, report_dir)
    _check_free(
        [
            *paths.values(),
            *map(cards.card_path, paths.values()),
            report_dir / report.RUN_FILE,
            *report.report_paths(report_dir),
        ],
        overwrite,
    )
    data = split(arrays, labelled, seed)
    train, validation, indices = data
    settings["labels"] = len(indices)
    unlabelled = len(train[1]) - len(indices)
    if teacher is None:
        print(
            f"[1/2] Training the teacher ({architecture}) for "
            f"{settings['teacher_epochs']} epochs on all {len(train[1]):,} "
            "training samples and their labels ..."
        )
        teacher = train_teacher(
            (train, validation),
            architecture,
            settings["teacher_epochs"],
            settings["batch_size"],
            seed,
            verbose,
        )
    else:
        datasets.check_fits(teacher, "teacher", *train)
        print(f"[1/2] Using the given teacher {teacher.name!r}.")
        settings.pop("teacher_epochs")
        settings["teacher"] = teacher.name
    print(
        f"[2/2] Training {'three' if unlabelled else 'two'} twins of the "
        f"student: {len(indices):,} labelled samples, {unlabelled:,} "
        f"unlabelled; T={settings['temperature']:g}, "
        f"alpha={settings['alpha']:g} ..."
    )
    students, histories = train_students(
        teacher, data, settings, seed, verbose, log=print
    )
    trained = {"teacher": teacher, **students}
    classes = {
        role: evaluation.predict_classes(model, x_test)
        for role, model in trained.items()
    }
    accuracies = {
        role: float(np.mean(predicted == y_test))
        for role, predicted in classes.items()
    }
    record = {
        "dataset": str(dataset),
        "settings": settings,
        "samples": {
            "labelled": len(indices),
            "unlabelled": unlabelled,
            "validation": len(validation[1]),
            "test": len(y_test),
        },
        "verdict": verdict(accuracies),
        "validation_accuracy": {
            role: evaluation.accuracy(model, *validation)
            for role, model in trained.items()
        },
        "models": [],
        "histories": histories,
    }
    methods = {
        "teacher": "supervised",
        "student_scratch": "supervised",
        "student_pseudo": "pseudo_labels",
        "student_distilled": "kd",
    }
    for role, model in trained.items():
        path = save_model(model, paths[role], overwrite=overwrite)
        card = cards.make_card(
            model,
            path,
            str(dataset),
            accuracies[role],
            methods[role],
            settings,
            seed,
            role=ROLES[role],
            latency_ms=round(evaluation.latency_ms(model, x_test), 4),
            teacher_agreement=round(
                float(np.mean(classes[role] == classes["teacher"])), 4
            ),
        )
        cards.write_json(cards.card_path(path), card, overwrite=overwrite)
        record["models"].append({**card, "path": str(path)})
    record["confusion_matrix"] = evaluation.confusion_matrix(
        y_test,
        classes["student_distilled"],
        datasets.num_classes(y_test),
    ).tolist()
    cards.write_json(report_dir / report.RUN_FILE, record, overwrite=overwrite)
    report.write_report(report_dir, overwrite=overwrite)
    return record
