"""The application's training protocol: how its runs train and compare.

Every run of the application (the demo, `kd-keras distill`, `train-teacher`
and `tune`, and the benchmarks) trains by the same rules:

- a fixed, stratified validation split is carved from the training data
  before anything trains (`split`), and the test set is scored once, at
  the end;
- the settings are the defaults of the architecture, `mlp` for feature
  vectors and `cnn` for images, updated with what the user gives
  (`settings_for`);
- each student stops when its validation accuracy has not improved for
  `patience` epochs and keeps its best epoch (`early_stopping`);
- a student's twins (scratch, pseudo-labels, distilled) start from the same
  weights and train the same number of steps per epoch (`train_student`).
"""

import keras
import numpy as np

from kd_keras import datasets, labels, models
from kd_keras.app import evaluation
from kd_keras.distiller import Distiller
from kd_keras.hyperparameters import DEFAULT_ALPHA, DEFAULT_TEMPERATURE

# Each student trains up to `epochs` epochs of the training set, stopping
# `patience` epochs after its best validation accuracy. T and alpha were
# chosen on the validation split by benchmarks/payoff.py.
DEFAULTS = {
    "mlp": dict(
        teacher_epochs=30,
        epochs=200,
        patience=20,
        batch_size=32,
        alpha=DEFAULT_ALPHA,
        temperature=DEFAULT_TEMPERATURE,
    ),
    "cnn": dict(
        teacher_epochs=8,
        epochs=40,
        patience=5,
        batch_size=128,
        alpha=DEFAULT_ALPHA,
        temperature=DEFAULT_TEMPERATURE,
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
        data, stratified (`kd_keras.datasets.split_validation`), and the
        indices in `x` of the labelled samples.
    """
    (x, y), _ = data
    (x_train, y_train), validation = datasets.split_validation(
        x, y, validation_fraction(len(y)), seed=_SPLIT_SEED
    )
    if labelled is None or labelled >= len(y_train):
        return (x_train, y_train), validation, np.arange(len(y_train))
    classes = datasets.num_classes(y)
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
    return (x_train, y_train), validation, np.sort(chosen)


def hard_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def early_stopping(patience, monitor="val_accuracy"):
    """Stops when validation accuracy (`monitor`) has not improved for
    `patience` epochs, and restores the best epoch's weights."""
    return keras.callbacks.EarlyStopping(
        monitor, patience=patience, mode="max", restore_best_weights=True
    )


def _fit_arguments(train):
    """`(x, y)` for `fit`: arrays `(x, y)`, or a dataset (or a
    `TeacherStore`) that holds its labels, and whether Keras shuffles
    them (a dataset shuffles itself: Keras warns if asked)."""
    if isinstance(train, tuple):
        return (*train, True)
    return train, None, False


def fit(model, train, validation, settings, seed, verbose):
    """Fits `model` under the protocol: `settings["epochs"]` at most,
    stopping early on `validation`, from `seed`. `train` is `(x, y)` or a
    dataset."""
    keras.utils.set_random_seed(seed)
    x, y, shuffle = _fit_arguments(train)
    return model.fit(
        x,
        y,
        shuffle=shuffle,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        validation_data=validation,
        callbacks=[early_stopping(settings["patience"])],
        verbose=verbose,
    )


def fit_teacher(teacher, train, validation, epochs, batch_size, seed, verbose):
    """Trains `teacher` on the labels for `epochs` (no early stopping: a
    teacher is trained to its budget); `train` is `(x, y)` or a dataset."""
    keras.utils.set_random_seed(seed)
    teacher.compile("adam", hard_loss(), metrics=["accuracy"])
    x, y, shuffle = _fit_arguments(train)
    teacher.fit(
        x,
        y,
        shuffle=shuffle,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation,
        verbose=verbose,
    )
    return teacher


def train_teacher(
    data, architecture=None, epochs=30, batch_size=64, seed=0, verbose=0
):
    """Trains a built-in teacher on `data`, `((x, y), validation)` arrays,
    and returns it."""
    (x_train, y_train), validation = data
    keras.utils.set_random_seed(seed)
    teacher = models.build(
        architecture or default_architecture(x_train),
        "teacher",
        x_train.shape[1:],
        datasets.num_classes(y_train),
    )
    return fit_teacher(
        teacher,
        (x_train, y_train),
        validation,
        epochs,
        batch_size,
        seed,
        verbose,
    )


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
        data: `(train, validation)`: `train` is `(x, y)`, a dataset or a
            `TeacherStore`, `validation` as `fit` takes it.
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
    train, validation = data
    return fit(distiller, train, validation, settings, seed, verbose)


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
        model.compile("adam", hard_loss(), metrics=["accuracy"])
        if role == "student_scratch":
            # The labelled samples repeated to the training set's size: an
            # epoch is then the same number of steps for every twin.
            repeats = np.resize(labelled, len(x))
            x, targets = x[repeats], y[repeats]
        else:
            targets = evaluation.predict_classes(teacher, x)
            targets[labelled] = y[labelled]
    history = fit(model, (x, targets), validation, settings, seed, verbose)
    return student, history.history
