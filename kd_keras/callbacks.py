"""Callbacks for distillation: schedules, and checkpoints of the student.

`StudentCheckpoint` is `keras.callbacks.ModelCheckpoint` saving the
student alone, as a plain Keras file.

A schedule is any callable `schedule(epoch) -> float`, `epoch` counted from
0 as in Keras callbacks. `constant`, `linear`, `cosine` and `step` build the
usual ones. `TemperatureSchedule` and `AlphaSchedule` set the value before
each epoch. The `Distiller` keeps both hyper-parameters in variables that
the compiled training step reads, so a new value is used at once, without
retracing, also with `jit_compile=True`.
"""

import bisect
import math

import keras

from kd_keras import compat, saving
from kd_keras.hyperparameters import (
    Hyperparameter,
    check_integer,
    check_number,
)


def _check_epoch(epoch):
    return check_integer("epoch", epoch, 0)


def constant(value):
    """The schedule giving `value` at every epoch.

    Args:
        value: The value.

    Returns:
        A function `schedule(epoch) -> float`.

    Example:

    >>> kd_keras.callbacks.constant(4.0)(7)
    4.0
    """
    value = check_number("value", value)

    def schedule(epoch):
        _check_epoch(epoch)
        return value

    return schedule


def _ramp(start, end, epochs, shape):
    """A schedule from `start` at epoch 0 to `end` at epoch `epochs - 1`.

    `shape(fraction)` maps the fraction of the ramp done, in [0, 1], to the
    fraction of the way from `start` to `end`.
    """
    start = check_number("start", start)
    end = check_number("end", end)
    last = check_integer("epochs", epochs, 2) - 1

    def schedule(epoch):
        fraction = min(_check_epoch(epoch), last) / last
        return start + (end - start) * shape(fraction)

    return schedule


def linear(start, end, epochs):
    """The schedule going linearly from `start` to `end` over `epochs`.

    The value is `start` at epoch 0 and `end` at epoch `epochs - 1`, so a
    `fit(..., epochs=epochs)` trains its last epoch with `end`. It stays at
    `end` after that.

    Formula:

    ```python
    value = start + (end - start) * min(epoch, epochs - 1) / (epochs - 1)
    ```

    Args:
        start: Value at epoch 0.
        end: Value from epoch `epochs - 1` on.
        epochs: Number of epochs of the ramp, an integer `>= 2`.

    Returns:
        A function `schedule(epoch) -> float`.

    Example:

    >>> schedule = kd_keras.callbacks.linear(8.0, 1.0, epochs=8)
    >>> [schedule(epoch) for epoch in (0, 1, 7, 9)]
    [8.0, 7.0, 1.0, 1.0]
    """
    return _ramp(start, end, epochs, lambda fraction: fraction)


def cosine(start, end, epochs):
    """The schedule going from `start` to `end` along a half cosine.

    Like `linear`, the value is `start` at epoch 0, `end` at epoch
    `epochs - 1` and after, but it changes slowly near both ends and fastest
    in the middle, as in `keras.optimizers.schedules.CosineDecay`.

    Formula:

    ```python
    fraction = min(epoch, epochs - 1) / (epochs - 1)
    value = end + (start - end) * (1 + cos(pi * fraction)) / 2
    ```

    Args:
        start: Value at epoch 0.
        end: Value from epoch `epochs - 1` on.
        epochs: Number of epochs of the ramp, an integer `>= 2`.

    Returns:
        A function `schedule(epoch) -> float`.

    Example:

    >>> schedule = kd_keras.callbacks.cosine(8.0, 2.0, epochs=3)
    >>> [schedule(epoch) for epoch in (0, 1, 2, 3)]
    [8.0, 5.0, 2.0, 2.0]
    """
    return _ramp(
        start,
        end,
        epochs,
        lambda fraction: (1 - math.cos(math.pi * fraction)) / 2,
    )


def step(values, boundaries):
    """The piecewise constant schedule: `values[i]` from `boundaries[i - 1]`.

    `values[0]` is used before epoch `boundaries[0]`, `values[1]` from epoch
    `boundaries[0]` until before `boundaries[1]`, and so on; the last value
    from the last boundary on. Unlike
    `keras.optimizers.schedules.PiecewiseConstantDecay`, counted in steps
    and changing value after a boundary, the new value applies from the
    boundary epoch itself.

    Args:
        values: The values, one more than `boundaries`.
        boundaries: Strictly increasing epochs `>= 1` at which the value
            changes.

    Returns:
        A function `schedule(epoch) -> float`.

    Example:

    >>> schedule = kd_keras.callbacks.step([0.5, 0.2, 0.1], [2, 5])
    >>> [schedule(epoch) for epoch in (0, 1, 2, 4, 5, 9)]
    [0.5, 0.5, 0.2, 0.2, 0.1, 0.1]
    """
    values = _as_list("values", values)
    boundaries = _as_list("boundaries", boundaries)
    values = [
        check_number(f"values[{i}]", value) for i, value in enumerate(values)
    ]
    boundaries = [
        check_integer(f"boundaries[{i}]", boundary, 1)
        for i, boundary in enumerate(boundaries)
    ]
    if len(values) != len(boundaries) + 1:
        raise ValueError(
            "values must have one more element than boundaries. Received: "
            f"values={values}, boundaries={boundaries}"
        )
    if any(
        a >= b for a, b in zip(boundaries[:-1], boundaries[1:], strict=True)
    ):
        raise ValueError(
            "boundaries must be strictly increasing. "
            f"Received: boundaries={boundaries}"
        )

    def schedule(epoch):
        return values[bisect.bisect_right(boundaries, _check_epoch(epoch))]

    return schedule


def _as_list(name, value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a list. Received: {name}={value!r}")
    return list(value)


class HyperparameterSchedule(keras.callbacks.Callback):
    """Sets a hyper-parameter of the model at the start of every epoch.

    Before epoch `epoch` (from 0) it does
    `setattr(model, name, schedule(epoch))`; after the epoch it writes the
    value into the epoch's logs as `logs[name]`, so it appears in the
    `History` returned by `fit`. The model checks the value (a `Distiller`
    refuses an `alpha` outside [0, 1] and a `temperature <= 0`); a refused
    value stops training with an error naming the epoch.

    `name` must be a hyper-parameter the compiled training step reads from
    a variable: a `kd_keras.hyperparameters.Hyperparameter` attribute of the
    model's class, or a property setting one, such as `Distiller.alpha` and
    `Distiller.temperature`. A plain Python attribute is refused, since the
    compiled step would keep using the value it was traced with.

    Args:
        name: Name of the model attribute to set, e.g. `"alpha"`.
        schedule: A function `schedule(epoch) -> float`, such as
            `kd_keras.callbacks.linear(0.5, 0.1, epochs=10)`.
        verbose: `0` is quiet, `1` prints the value set at each epoch.
            Defaults to `0`.

    Example:

    ```python
    schedule = kd_keras.callbacks.HyperparameterSchedule(
        "alpha", kd_keras.callbacks.step([0.5, 0.1], [3])
    )
    history = distiller.fit(x, y, epochs=6, callbacks=[schedule])
    history.history["alpha"]  # [0.5, 0.5, 0.5, 0.1, 0.1, 0.1]
    ```
    """

    # Said when the model has the attribute but its value is `None`.
    _missing_hint = ""

    def __init__(self, name, schedule, verbose=0):
        super().__init__()
        if not isinstance(name, str):
            raise TypeError(f"name must be a string. Received: name={name!r}")
        if not callable(schedule):
            raise TypeError(
                "schedule must be a function epoch -> float, such as "
                "kd_keras.callbacks.linear(8.0, 1.0, epochs=10). "
                f"Received: schedule={schedule!r}"
            )
        self.name = name
        self.schedule = schedule
        self.verbose = verbose

    def _check_model(self):
        model = self.model
        described = (
            f"{type(self).__name__} sets {self.name!r}, but the model "
            f"{getattr(model, 'name', model)!r} of type "
            f"{type(model).__name__}"
        )
        attribute = getattr(type(model), self.name, None)
        settable = isinstance(attribute, Hyperparameter) or (
            isinstance(attribute, property) and attribute.fset is not None
        )
        if not settable:
            found = (
                f"has no attribute {self.name!r}"
                if not hasattr(model, self.name)
                else f"holds {self.name!r} in a plain attribute, which the "
                "compiled training step would not read again"
            )
            raise ValueError(
                f"{described} {found}. Schedule a "
                "kd_keras.hyperparameters.Hyperparameter of the model, or a "
                "property setting one, such as Distiller.alpha or "
                "Distiller.temperature."
            )
        if getattr(model, self.name) is None:
            raise ValueError(
                f"{described} has {self.name}=None.{self._missing_hint}"
            )

    def on_train_begin(self, logs=None):
        self._check_model()

    def on_epoch_begin(self, epoch, logs=None):
        value = self.schedule(epoch)
        try:
            setattr(self.model, self.name, value)
        except (TypeError, ValueError) as error:
            raise type(error)(
                f"{type(self).__name__}: the schedule gave "
                f"{self.name}={value!r} for epoch {epoch}, which the model "
                f"refuses: {error}"
            ) from error
        if self.verbose > 0:
            print(
                f"\nEpoch {epoch + 1}: {type(self).__name__} setting "
                f"{self.name} to {getattr(self.model, self.name)}."
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self.name] = getattr(self.model, self.name)


class TemperatureSchedule(HyperparameterSchedule):
    """Sets the `Distiller`'s temperature at the start of every epoch.

    A `HyperparameterSchedule` of `"temperature"`: the temperature of the
    distillation loss (which must have one, like `kd_keras.losses.KD`)
    becomes `schedule(epoch)`, and `History` gets a `"temperature"` entry.
    A common choice anneals from a soft, high temperature towards 1.

    Args:
        schedule: A function `schedule(epoch) -> float` giving values
            `> 0`, such as `kd_keras.callbacks.linear(8.0, 1.0, epochs=10)`.
        verbose: `0` is quiet, `1` prints the temperature set at each epoch.
            Defaults to `0`.

    Example:

    ```python
    distiller = kd_keras.Distiller(teacher, student, temperature=8.0)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(
        x_train,
        y_train,
        epochs=10,
        callbacks=[
            kd_keras.callbacks.TemperatureSchedule(
                kd_keras.callbacks.linear(8.0, 1.0, epochs=10)
            )
        ],
    )
    ```
    """

    _missing_hint = (
        " Its distillation loss has no temperature; use one that has, such "
        "as kd_keras.losses.KD."
    )

    def __init__(self, schedule, verbose=0):
        super().__init__("temperature", schedule, verbose=verbose)


class AlphaSchedule(HyperparameterSchedule):
    """Sets the `Distiller`'s `alpha` at the start of every epoch.

    A `HyperparameterSchedule` of `"alpha"`, the weight of the hard-label
    loss in `alpha * student_loss + (1 - alpha) * distillation_loss`;
    `History` gets an `"alpha"` entry.

    Args:
        schedule: A function `schedule(epoch) -> float` giving values in
            [0, 1], such as `kd_keras.callbacks.cosine(0.5, 0.1, epochs=10)`.
        verbose: `0` is quiet, `1` prints the alpha set at each epoch.
            Defaults to `0`.

    Example:

    ```python
    distiller.fit(
        x_train,
        y_train,
        epochs=10,
        callbacks=[
            kd_keras.callbacks.AlphaSchedule(
                kd_keras.callbacks.cosine(0.5, 0.1, epochs=10)
            )
        ],
    )
    ```
    """

    def __init__(self, schedule, verbose=0):
        super().__init__("alpha", schedule, verbose=verbose)


class StudentCheckpoint(compat.SavingCheckpoint):
    """`keras.callbacks.ModelCheckpoint` saving the student of a Distiller.

    `ModelCheckpoint` on a `Distiller` saves the whole distiller (teacher,
    student, optimizer), which only loads with kd_keras. This callback
    takes the same arguments and decides when to save the same way
    (`monitor`, `save_best_only`, `save_freq`, ...), but writes
    `model.student` alone: a `.h5` or `.keras` file that
    `keras.models.load_model` reads without kd_keras, or with
    `save_weights_only=True` the student's `.weights.h5`. Every write goes
    to a temporary file renamed over `filepath`, so an interrupted save
    leaves the previous checkpoint whole.

    Args:
        filepath: Path of the file, ending in `.h5`, `.keras` or (with
            `save_weights_only=True`) `.weights.h5`; it may hold
            `ModelCheckpoint`'s placeholders, such as `{epoch:02d}`.
        monitor: The metric deciding the best epoch. Defaults to
            `"val_loss"`.
        verbose: 1 prints a line at each save. Defaults to `0`.
        save_best_only: Whether to save only when `monitor` improves.
            Defaults to `False`.
        save_weights_only: Whether to save the student's weights alone.
            Defaults to `False`.
        mode: `"min"`, `"max"` or `"auto"`: which way `monitor` improves.
            Defaults to `"auto"`.
        save_freq: `"epoch"`, or a number of batches between saves.
            Defaults to `"epoch"`.
        initial_value_threshold: The `monitor` value to beat before the
            first save. Defaults to `None`.

    Example:

    ```python
    checkpoint = kd_keras.callbacks.StudentCheckpoint(
        "student.h5", monitor="val_accuracy", save_best_only=True
    )
    distiller.fit(x, y, epochs=10, validation_split=0.1,
                  callbacks=[checkpoint])
    student = keras.models.load_model("student.h5")  # the best epoch's
    ```
    """

    def set_model(self, model):
        student = getattr(model, "student", None)
        if not isinstance(student, keras.Model):
            raise TypeError(
                "StudentCheckpoint saves the student of a kd_keras "
                "Distiller; this model has no `student`. Use "
                "keras.callbacks.ModelCheckpoint for other models. "
                f"Received: model={getattr(model, 'name', model)!r} of type "
                f"{type(model).__name__}"
            )
        super().set_model(model)

    def write(self, filepath, epoch):
        """Writes the student (or its weights) to `filepath`, atomically."""
        student = self.model.student
        if self.save_weights_only:
            saving.save_weights(student, filepath, overwrite=True)
        else:
            saving.save_model(student, filepath, overwrite=True)
        if self.verbose > 0:
            print(
                f"\nEpoch {epoch + 1}: {type(self).__name__} saved the "
                f"student to {filepath}"
            )


__all__ = [
    "constant",
    "linear",
    "cosine",
    "step",
    "HyperparameterSchedule",
    "TemperatureSchedule",
    "AlphaSchedule",
    "StudentCheckpoint",
]
