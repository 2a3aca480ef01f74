"""Tuning distillation with KerasTuner, the teacher paid once.

Every trial of a search distils from the same teacher on the same inputs,
so the teacher's outputs on the training and validation inputs are
computed once, before the first trial (`Distiller.with_teacher_outputs`),
and every trial trains from them. A search costs its trials' student fits
plus one teacher pass, not one teacher pass per epoch of every trial.

`tune` searches the temperature, `alpha` and the learning rate by default,
and optionally the method and its own parameters, with any KerasTuner
tuner (random search, Bayesian optimization, Hyperband). The objective is
the student's accuracy on validation data, never the test set. A search
interrupted (a killed process, Ctrl-C) resumes from its project folder.

Needs `keras-tuner` (`pip install kd_keras[tune]`).
"""

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path

import keras
import numpy as np

from kd_keras import methods as kd_methods
from kd_keras.datasets import split_validation
from kd_keras.distiller import Distiller
from kd_keras.files import atomic_path
from kd_keras.hyperparameters import (
    DEFAULT_ALPHA,
    DEFAULT_TEMPERATURE,
    check_fraction,
)
from kd_keras.saving import save_weights
from kd_keras.teacher_outputs import TeacherCache, TeacherStore

try:
    import keras_tuner
except ImportError:  # pragma: no cover - depends on the installation
    raise ImportError(
        "kd_keras.tune needs KerasTuner: pip install kd_keras[tune] (or "
        "keras-tuner).",
        name="keras_tuner",
    ) from None

TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
ALPHAS = (0.1, 0.3, 0.5, 0.7, 0.9)
LEARNING_RATES = (1e-4, 1e-2)
OBJECTIVE = "val_accuracy"
TUNERS = {
    "random": keras_tuner.RandomSearch,
    "bayesian": keras_tuner.BayesianOptimization,
    "hyperband": keras_tuner.Hyperband,
}


def _check_choices(name, values, bounds=None):
    values = tuple(values)
    if not values or any(
        isinstance(v, bool) or not isinstance(v, int | float) for v in values
    ):
        raise TypeError(
            f"{name} must be a non-empty sequence of numbers. Received: "
            f"{name}={values!r}"
        )
    if bounds is not None and any(
        not bounds[0] <= v <= bounds[1] for v in values
    ):
        raise ValueError(
            f"{name} must lie in [{bounds[0]}, {bounds[1]}]. Received: "
            f"{name}={values!r}"
        )
    return tuple(float(v) for v in values)


class _TrialDistiller(Distiller):
    """A trial's `Distiller`, whose checkpoints hold the student alone.

    KerasTuner saves a trial's best epoch with `save_weights` and loads it
    for the best model and for Hyperband's next round of the trial. The
    teacher is frozen and the same in every trial: writing its weights at
    every better epoch would cost a wide teacher's size each time. (The
    adapters of feature losses start again in Hyperband's next round.)
    """

    def save_weights(self, filepath, overwrite=True, max_shard_size=None):
        save_weights(self.student, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        self.student.load_weights(filepath, skip_mismatch, **kwargs)


class DistillationHyperModel(keras_tuner.HyperModel):
    """The search space of `tune`, as a KerasTuner `HyperModel`.

    `build(hp)` returns a compiled `Distiller` of `teacher` and a fresh
    `student_fn(hp)`, the same initial weights in every trial (`seed`);
    `fit(hp, model, x, y, validation_data=...)` trains it from the
    teacher's outputs, computed at the first trial and reused by every
    later one (`teacher_passes` counts the passes).

    Args:
        teacher: The trained teacher.
        student_fn: `student_fn(hp)` returns a new, uncompiled student; it
            may read `hp` to tune the student too.
        methods: Names of `kd_keras.methods.METHODS` to choose from.
            Defaults to `("kd",)`.
        temperatures: The temperatures tried. Defaults to `(1, 2, 4, 8)`.
        alphas: The `alpha` values tried (weight of the hard-label loss).
            Defaults to `(0.1, 0.3, 0.5, 0.7, 0.9)`.
        learning_rates: `(low, high)` of Adam's learning rate, sampled on a
            log scale, or one number to fix it. Defaults to `(1e-4, 1e-2)`.
        method_parameters: Values tried for a method's own parameters, as
            `{method: {parameter: [values]}}`. Defaults to `None`.
        seed: Seed of every trial's initial student. Defaults to `0`.
        cache: How the teacher's outputs are stored, as for `tune`.
            Defaults to `TeacherCache()`.
        epoch_choices: Numbers of epochs tried, a hyperparameter
            `"epochs"`, or `None` to train every trial the search's
            `epochs`. Defaults to `None`.

    Example:

    ```python
    hypermodel = kd_keras.tuning.DistillationHyperModel(
        teacher, lambda hp: kd_keras.models.mlp_student((64,), 10)
    )
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_accuracy", max_trials=8
    )
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=10)
    ```
    """

    def __init__(
        self,
        teacher,
        student_fn,
        methods=("kd",),
        temperatures=TEMPERATURES,
        alphas=ALPHAS,
        learning_rates=LEARNING_RATES,
        method_parameters=None,
        seed=0,
        cache=None,
        epoch_choices=None,
    ):
        super().__init__(name="distillation")
        if isinstance(student_fn, keras.Model) or not callable(student_fn):
            raise TypeError(
                "student_fn must be a function of the hyperparameters that "
                "returns a new student (for a model: lambda hp: "
                "kd_keras.models.copy_model(model, 'student')). Received: "
                f"{student_fn!r}"
            )
        methods = (methods,) if isinstance(methods, str) else tuple(methods)
        for name in methods:
            kd_methods.distillation_losses(name)  # a clear error if unknown
        self.teacher = teacher
        self.student_fn = student_fn
        self.methods = methods
        self.temperatures = _check_choices("temperatures", temperatures)
        self.alphas = _check_choices("alphas", alphas, (0.0, 1.0))
        if isinstance(learning_rates, int | float):
            learning_rates = (learning_rates, learning_rates)
        self.learning_rates = _check_choices(
            "learning_rates", learning_rates, (0.0, math.inf)
        )
        if len(self.learning_rates) != 2 or not (
            0 < self.learning_rates[0] <= self.learning_rates[1]
        ):
            raise ValueError(
                "learning_rates must be (low, high) with 0 < low <= high, or "
                f"one number. Received: learning_rates={learning_rates!r}"
            )
        self.method_parameters = dict(method_parameters or {})
        unknown = set(self.method_parameters) - set(methods)
        if unknown:
            raise ValueError(
                f"method_parameters names {sorted(unknown)}, which are not "
                f"in methods={list(methods)}."
            )
        self.seed = seed
        self.cache = TeacherCache() if cache is None else cache
        if self.cache is not False and not isinstance(
            self.cache, TeacherCache | TeacherStore
        ):
            raise TypeError(
                "cache must be a kd_keras.TeacherCache, a "
                f"kd_keras.TeacherStore or False. Received: cache={cache!r}"
            )
        self.epoch_choices = None
        if epoch_choices is not None:
            self.epoch_choices = [int(e) for e in epoch_choices]
            if not self.epoch_choices or min(self.epoch_choices) < 1:
                raise ValueError(
                    "epoch_choices must hold positive numbers of epochs. "
                    f"Received: epoch_choices={epoch_choices!r}"
                )
        self.teacher_passes = 0
        self._outputs = {}
        self._store_data = None  # the training inputs checked against it

    def _method(self, hp):
        if len(self.methods) == 1:
            return hp.Fixed("method", self.methods[0])
        return hp.Choice("method", list(self.methods))

    def _parameters(self, hp, method):
        grid = self.method_parameters.get(method, {})
        if not grid:
            return {}
        # A method's own parameters exist only in its trials.
        with hp.conditional_scope("method", [method]):
            return {
                name: hp.Choice(f"{method}_{name}", list(values))
                for name, values in grid.items()
            }

    def _learning_rate(self, hp):
        low, high = self.learning_rates
        if low == high:
            return hp.Fixed("learning_rate", low)
        return hp.Float("learning_rate", low, high, sampling="log")

    def build(self, hp):
        """A compiled `Distiller` with the trial's settings."""
        method = self._method(hp)
        temperature = hp.Choice("temperature", list(self.temperatures))
        alpha = hp.Choice("alpha", list(self.alphas))
        learning_rate = self._learning_rate(hp)
        losses, weights = kd_methods.distillation_losses(
            method, temperature, **self._parameters(hp, method)
        )
        keras.utils.set_random_seed(self.seed)
        distiller = _TrialDistiller(
            self.teacher,
            self.student_fn(hp),
            distillation_loss=losses,
            distillation_loss_weights=weights,
            alpha=alpha,
            cache=self.cache,
            # Keras' default, "__trial_distiller", is no valid name scope.
            name="trial_distiller",
        )
        distiller.compile(
            keras.optimizers.Adam(learning_rate), metrics=["accuracy"]
        )
        return distiller

    def clear_outputs(self):
        """Frees the teacher's outputs kept for the trials."""
        self._outputs.clear()
        self._store_data = None

    def _with_outputs(self, model, x, batch_size, verbose):
        """`x` with the teacher's outputs on it, computed once per set of
        teacher layers the trials' losses read."""
        key = (id(x), model.teacher_layers)
        if key not in self._outputs:
            self._outputs[key] = (
                x,
                model.with_teacher_outputs(x, batch_size, verbose),
            )
            self.teacher_passes += 1
        return self._outputs[key][1]

    def fit(self, hp, model, x, y=None, validation_data=None, **kwargs):
        """Trains the trial's `model` from the teacher's stored outputs.

        Args:
            hp: The trial's hyperparameters.
            model: The trial's `Distiller` (`build`).
            x: The training inputs (arrays).
            y: The training labels.
            validation_data: `(x_val, y_val)`, arrays.
            **kwargs: Arguments of `Distiller.fit` (epochs, callbacks...).
        """
        if validation_data is None or len(validation_data) != 2:
            raise ValueError(
                "DistillationHyperModel trains on arrays with "
                "validation_data=(x_val, y_val): pass them to the tuner's "
                "search."
            )
        if self.epoch_choices:
            kwargs["epochs"] = hp.Choice("epochs", self.epoch_choices)
        if self.cache is False:
            return model.fit(x, y, validation_data=validation_data, **kwargs)
        batch_size = kwargs.get("batch_size") or 32
        verbose = kwargs.get("verbose", 1)
        x_val, y_val = validation_data
        if isinstance(self.cache, TeacherStore):
            if self._store_data is not x:
                self.cache.check_data((x, y))
                self._store_data = x
            x, y = self.cache, None
        else:
            x = self._with_outputs(model, x, batch_size, verbose)
        return model.fit(
            x,
            y,
            validation_data=(
                self._with_outputs(model, x_val, batch_size, verbose),
                y_val,
            ),
            **kwargs,
        )


@dataclasses.dataclass
class TuneResult:
    """What `tune` found.

    Args:
        student: The best trial's student, a plain Keras model, at its best
            validation epoch.
        hyperparameters: The best trial's settings, a dict.
        validation_accuracy: The best trial's validation accuracy.
        trials: Every completed trial as a dict: `trial_id`, the settings,
            `val_accuracy` and `best_epoch` (its best epoch's), in the
            order they ran.
        tuner: The KerasTuner tuner (its oracle and project folder).
        teacher_passes: How many times the teacher ran over the data (once
            for the training and once for the validation inputs when the
            trials read the same teacher outputs).

    Example:

    ```python
    result = kd_keras.tune(teacher, student_fn, x_train, y_train)
    result.hyperparameters, result.validation_accuracy
    result.student.save("student.h5")
    ```
    """

    student: keras.Model
    hyperparameters: dict
    validation_accuracy: float
    trials: list
    tuner: object
    teacher_passes: int


def soft_target_statistics(logits, temperatures=TEMPERATURES):
    """How much a teacher's soft targets say beyond its top class.

    Args:
        logits: The teacher's logits on the training inputs, `(samples,
            classes)`.
        temperatures: The temperatures to measure at. Defaults to `(1, 2,
            4, 8)`.

    Returns:
        `{T: {"entropy": ..., "off_top": ...}}`: the mean entropy of the
        softened probabilities as a share of the largest possible
        (`log(classes)`), and their mean mass off the top class. Near 0,
        the soft targets are the labels again.

    Example:

    >>> logits = [[4.0, 0.0, 0.0]]
    >>> stats = kd_keras.tuning.soft_target_statistics(logits, [1, 4])
    >>> {t: round(s["off_top"], 3) for t, s in stats.items()}
    {1.0: 0.035, 4.0: 0.424}
    """
    z = np.asarray(logits, np.float64)
    statistics = {}
    for temperature in temperatures:
        scaled = z / temperature
        scaled -= scaled.max(-1, keepdims=True)
        p = np.exp(scaled)
        p /= p.sum(-1, keepdims=True)
        entropy = -np.sum(p * np.log(np.maximum(p, 1e-300)), -1)
        statistics[float(temperature)] = {
            "entropy": float(entropy.mean() / np.log(z.shape[-1])),
            "off_top": float(1.0 - p.max(-1).mean()),
        }
    return statistics


def _tuner_class(tuner):
    """The KerasTuner tuner class `tuner` names, or is."""
    tuner = TUNERS.get(tuner, tuner) if isinstance(tuner, str) else tuner
    if not (isinstance(tuner, type) and issubclass(tuner, keras_tuner.Tuner)):
        raise ValueError(
            f"tuner must be one of {', '.join(TUNERS)} or a KerasTuner tuner "
            f"class (e.g. keras_tuner.Hyperband). Received: tuner={tuner!r}"
        )
    return tuner


def _make_tuner(tuner, hypermodel, max_trials, epochs, seed, **kwargs):
    """An instance of the tuner class `tuner` searching `hypermodel`."""
    if hypermodel.epoch_choices and issubclass(tuner, keras_tuner.Hyperband):
        raise ValueError(
            "Hyperband chooses each trial's epochs itself: drop epoch_choices."
        )
    objective = keras_tuner.Objective(OBJECTIVE, direction="max")
    budget = (
        {"max_epochs": epochs}
        if issubclass(tuner, keras_tuner.Hyperband)
        else {"max_trials": max_trials}
    )
    return tuner(
        hypermodel=hypermodel,
        objective=objective,
        seed=seed,
        **budget,
        **kwargs,
    )


# Adam's default learning rate, the first trial's when the range holds it.
_DEFAULT_LEARNING_RATE = 1e-3


def _start_at_the_defaults(oracle, hypermodel):
    """Makes the first trial of a new search try the Distiller's defaults
    (T=4, alpha=0.1, Adam's learning rate 1e-3, the first method) where the
    search space holds them: the search then never returns a setting worse
    on validation than the defaults. A resumed search goes on as it was."""
    low, high = hypermodel.learning_rates
    defaults = {
        name: value
        for name, value, values in (
            ("temperature", DEFAULT_TEMPERATURE, hypermodel.temperatures),
            ("alpha", DEFAULT_ALPHA, hypermodel.alphas),
            ("method", hypermodel.methods[0], hypermodel.methods),
        )
        if value in values
    }
    if low <= _DEFAULT_LEARNING_RATE <= high:
        defaults["learning_rate"] = _DEFAULT_LEARNING_RATE
    populate = oracle.populate_space

    def populate_space(trial_id):
        response = populate(trial_id)
        values = response.get("values")
        if not oracle.trials and values is not None:
            response["values"] = {
                **values,
                **{k: v for k, v in defaults.items() if k in values},
            }
        return response

    oracle.populate_space = populate_space


def _settings(trial):
    """A trial's hyperparameters, without KerasTuner's own (`tuner/...`,
    Hyperband's bookkeeping)."""
    return {
        name: value
        for name, value in trial.hyperparameters.values.items()
        if not name.startswith("tuner/")
    }


def _trials(tuner):
    """Completed trials, in the order they ran."""
    rows = []
    for trial in sorted(
        tuner.oracle.trials.values(), key=lambda t: int(t.trial_id)
    ):
        if trial.status != "COMPLETED" or trial.score is None:
            continue
        rows.append(
            {
                "trial_id": trial.trial_id,
                **_settings(trial),
                "val_accuracy": float(trial.score),
                "best_epoch": int(trial.best_step) + 1,
            }
        )
    return rows


IDENTITY_FILE = "kd_keras_search.json"


def _digest(*parts):
    """A short SHA-256 of arrays and JSON-able values."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(str((part.shape, part.dtype)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(
                json.dumps(part, sort_keys=True, default=str).encode()
            )
    return digest.hexdigest()[:16]


def _architecture(model):
    """`model`'s layers and their settings, without the names Keras numbers
    per process (`dense_12`), which differ between identical models."""
    return [
        (
            type(layer).__name__,
            {k: v for k, v in layer.get_config().items() if k != "name"},
        )
        for layer in model.layers
    ]


def _identity(hypermodel, tuner, data):
    """What a search's trials depend on, each part as a fingerprint: the
    teacher's weights, the student's architecture, the search space and
    tuner, and the data."""
    student = hypermodel.student_fn(keras_tuner.HyperParameters())
    space = {
        key: getattr(hypermodel, key)
        for key in (
            "methods",
            "temperatures",
            "alphas",
            "learning_rates",
            "method_parameters",
            "epoch_choices",
            "seed",
        )
    }
    return {
        "teacher": _digest(*hypermodel.teacher.get_weights()),
        "student": _digest(_architecture(student)),
        "search space": _digest(space, tuner.__name__),
        "data": _digest(*(np.asarray(a) for a in data)),
    }


def _check_identity(folder, identity, overwrite):
    """Refuses to resume, in `folder`, a search of something else."""
    path = Path(folder) / IDENTITY_FILE
    if overwrite or not path.is_file():
        return
    differ = [
        part
        for part, value in json.loads(path.read_text()).items()
        if identity.get(part) != value
    ]
    if differ:
        raise ValueError(
            f"{folder} holds a search with another {', '.join(differ)}; "
            "it resumes only the same search. Pass overwrite=True "
            "(kd-keras tune --overwrite) to start it over, or choose "
            "another directory or project_name."
        )


def _is_worker():
    """Whether this process is a worker of a distributed search: KerasTuner's
    documented `KERASTUNER_*` variables name a chief oracle, and this
    process is not it."""
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in (
        os.environ.get("KERASTUNER_TUNER_ID", "")
    )


def tune(
    teacher,
    student_fn,
    x,
    y,
    validation_data=None,
    validation_split=0.2,
    tuner="random",
    max_trials=10,
    epochs=20,
    batch_size=32,
    methods=("kd",),
    temperatures=TEMPERATURES,
    alphas=ALPHAS,
    learning_rates=LEARNING_RATES,
    method_parameters=None,
    epoch_choices=None,
    cache=None,
    directory="runs",
    project_name="tune",
    overwrite=False,
    seed=0,
    callbacks=None,
    verbose=1,
    **tuner_kwargs,
):
    """Searches the distillation settings of a student with KerasTuner.

    Every trial distils `teacher` into a fresh `student_fn(hp)` (the same
    initial weights in every trial) with a temperature, an `alpha` and a
    learning rate (and a method, with its own parameters, when several are
    given) chosen by the tuner, and is scored by the student's best
    validation accuracy. The first trial of a new search tries the
    defaults (T=4, alpha=0.1, Adam's learning rate 1e-3) where the space
    holds them, so the search never returns a setting worse on validation
    than the defaults. The teacher's outputs are computed once for the
    whole search. An interrupted search resumes from
    `directory/project_name` (unless `overwrite`).

    Args:
        teacher: The trained teacher (logits or softmax outputs).
        student_fn: `student_fn(hp)` returns a new, uncompiled student.
        x: Training inputs (arrays).
        y: Training labels (class indices or one-hot).
        validation_data: `(x_val, y_val)`. Defaults to `None`: a fixed,
            stratified `validation_split` of `x` is held out
            (`kd_keras.datasets.split_validation`).
        validation_split: Share of `x` held out when `validation_data` is
            `None`. Defaults to `0.2`.
        tuner: `"random"`, `"bayesian"`, `"hyperband"`, or a KerasTuner
            tuner class. Defaults to `"random"`.
        max_trials: Number of trials (Hyperband sets its own from
            `epochs`). Defaults to `10`.
        epochs: Most epochs a trial trains. Defaults to `20`.
        batch_size: Defaults to `32`.
        methods: Method names of `kd_keras.methods.METHODS` to choose from.
            Defaults to `("kd",)`.
        temperatures: Temperatures tried. Defaults to `(1, 2, 4, 8)`.
        alphas: `alpha` values tried. Defaults to `(0.1, 0.3, 0.5, 0.7,
            0.9)`.
        learning_rates: `(low, high)` of Adam's learning rate (log scale),
            or one number. Defaults to `(1e-4, 1e-2)`.
        method_parameters: `{method: {parameter: [values]}}` tried for the
            methods' own parameters. Defaults to `None`.
        epoch_choices: Numbers of epochs tried (not with Hyperband, which
            sets them itself), or `None` for `epochs`. Defaults to `None`.
        cache: How the teacher's outputs are stored: a
            `kd_keras.TeacherCache`; a `kd_keras.TeacherStore` built on the
            training data (checked once), which the trials read, the
            teacher then running over the validation data alone; or
            `False` to run the teacher at every step of every trial.
            Defaults to `TeacherCache()`.
        directory: Folder of KerasTuner's project. Defaults to `"runs"`.
        project_name: The project's name. Defaults to `"tune"`.
        overwrite: Start over instead of resuming. Defaults to `False`.
        seed: Seed of the tuner, the split and the initial student.
            Defaults to `0`.
        callbacks: Keras callbacks of every trial's `fit`. Defaults to
            `None`.
        verbose: `fit`'s verbosity. Defaults to `1`.
        **tuner_kwargs: Other arguments of the tuner class.

    Returns:
        A `TuneResult`; `None` in a worker of a distributed search (the
        chief's call returns the result): see `docs/tuning.md`.

    Example:

    ```python
    result = kd_keras.tune(
        teacher,
        lambda hp: kd_keras.models.mlp_student((64,), 10),
        x_train,
        y_train,
        max_trials=8,
        epochs=10,
    )
    result.hyperparameters  # {'temperature': 4.0, 'alpha': 0.3, ...}
    result.student.save("student.h5")
    ```
    """
    if validation_data is None:
        (x, y), validation_data = split_validation(
            x, y, check_fraction("validation_split", validation_split), seed
        )
    hypermodel = DistillationHyperModel(
        teacher,
        student_fn,
        methods=methods,
        temperatures=temperatures,
        alphas=alphas,
        learning_rates=learning_rates,
        method_parameters=method_parameters,
        seed=seed,
        cache=cache,
        epoch_choices=epoch_choices,
    )
    if isinstance(cache, TeacherStore):
        # Before the search: KerasTuner reports a trial's error and goes on.
        cache.check_data((x, y))
        hypermodel._store_data = x
    tuner = _tuner_class(tuner)
    folder = Path(directory) / project_name
    identity = _identity(hypermodel, tuner, (x, y, *validation_data[:2]))
    _check_identity(folder, identity, overwrite)
    search = _make_tuner(
        tuner,
        hypermodel,
        max_trials,
        epochs,
        seed,
        directory=directory,
        project_name=project_name,
        overwrite=overwrite,
        **tuner_kwargs,
    )
    _start_at_the_defaults(search.oracle, hypermodel)
    with atomic_path(folder / IDENTITY_FILE, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(identity, indent=1))
    search.search(
        x,
        y,
        validation_data=tuple(validation_data),
        epochs=epochs,
        batch_size=batch_size,
        callbacks=list(callbacks or []),
        verbose=verbose,
    )
    hypermodel.clear_outputs()
    if _is_worker():
        return None
    best = search.oracle.get_best_trials(1)
    if not best:
        raise ValueError(
            "No trial completed: see the errors above, or the trials in "
            f"{search.project_dir}."
        )
    distiller = search.load_model(best[0])
    return TuneResult(
        student=distiller.student,
        hyperparameters=_settings(best[0]),
        validation_accuracy=float(best[0].score),
        trials=_trials(search),
        tuner=search,
        teacher_passes=hypermodel.teacher_passes,
    )


__all__ = [
    "TEMPERATURES",
    "ALPHAS",
    "LEARNING_RATES",
    "DistillationHyperModel",
    "TuneResult",
    "soft_target_statistics",
    "tune",
]
