"""The distillation methods by name, for the command line and benchmarks.

A loss method (`METHODS`) is a loss of `kd_keras.losses` with the weight it
gets against the other terms and the defaults of its paper:
`distillation_losses("dkd", temperature=4.0, beta=8.0)` builds what
`Distiller(distillation_loss=..., distillation_loss_weights=...)` takes.
A scheme (`SCHEMES`) trains differently: several models in turn or at once,
or augmented batches; `train_scheme` runs one with Hinton KD.
"""

import dataclasses
import inspect
import json

import keras

from kd_keras import chains, losses, models
from kd_keras.function_matching import FunctionMatching
from kd_keras.mutual import MutualLearning


@dataclasses.dataclass(frozen=True)
class Method:
    """A named distillation method.

    Args:
        loss: The `kd_keras.losses` class.
        summary: One line for `--help`.
        weight: Default weight of its term. Feature losses are small
            numbers and get the weight their paper's code gives them.
            Defaults to `1.0`.
        defaults: Defaults of the loss's arguments that differ from the
            class's own (the paper's settings for the benchmarks). Defaults
            to `{}`.

    Example:

    >>> method = kd_keras.methods.METHODS["fitnet"]
    >>> method.loss.__name__, method.weight
    ('FitNet', 100.0)
    """

    loss: type
    summary: str
    weight: float = 1.0
    defaults: dict = dataclasses.field(default_factory=dict)

    @property
    def parameters(self):
        """Names of the loss's arguments a user may set."""
        signature = inspect.signature(self.loss.__init__).parameters
        return [
            name
            for name in signature
            if name not in ("self", "reduction", "name", "dtype", "temperature")
        ]

    @property
    def tempered(self):
        return "temperature" in inspect.signature(self.loss.__init__).parameters


METHODS = {
    "kd": Method(losses.KD, "Hinton KD: T^2 KL of softened probabilities"),
    "soft_ce": Method(
        losses.SoftTargetCrossEntropy, "cross-entropy to soft targets"
    ),
    "logit_mse": Method(losses.LogitMSE, "MSE between logits"),
    "dkd": Method(
        losses.DKD,
        "decoupled KD (warm-up: 1 epoch; the paper: 20 of 240)",
        defaults={"warmup": 1},
    ),
    "dist": Method(losses.DIST, "DIST: inter- and intra-class correlation"),
    "multilabel": Method(
        losses.MultiLabelKD, "per-label sigmoid KD for multi-label teachers"
    ),
    "regression": Method(
        losses.RegressionKD, "MSE or Huber to the teacher's outputs"
    ),
    "fitnet": Method(
        losses.FitNet, "FitNets hints on named layers", weight=100.0
    ),
    "at": Method(
        losses.AttentionTransfer,
        "attention transfer on named layers",
        weight=1000.0,
    ),
    "rkd": Method(losses.RKD, "relational KD: distances and angles"),
}


def parse_value(text):
    """`"8"` -> 8, `"true"` -> True, `"pool_1"` -> "pool_1"."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def distillation_losses(name, temperature=4.0, **parameters):
    """`([loss], [weight])` of the method `name`.

    Args:
        name: A key of `METHODS`.
        temperature: Temperature of the methods that have one. Defaults to
            `4.0`.
        **parameters: The loss's own arguments, and `weight`.

    Returns:
        `([loss], [weight])`, for `Distiller(distillation_loss=...,
        distillation_loss_weights=...)`.

    Raises:
        ValueError: For an unknown method or argument.

    Example:

    >>> losses, weights = kd_keras.methods.distillation_losses(
    ...     "at", teacher_layer="pool_1", student_layer="pool_1"
    ... )
    >>> type(losses[0]).__name__, weights
    ('AttentionTransfer', [1000.0])
    """
    if name not in METHODS:
        raise ValueError(
            f"Unknown method {name!r}. Choose one of: {', '.join(METHODS)}."
        )
    method = METHODS[name]
    weight = parameters.pop("weight", method.weight)
    unknown = set(parameters) - set(method.parameters)
    if unknown:
        accepted = ", ".join(["weight", *method.parameters])
        raise ValueError(
            f"{name} has no parameter {', '.join(sorted(unknown))}. Its "
            f"parameters: {accepted}."
        )
    arguments = {**method.defaults, **parameters}
    if method.tempered:
        arguments["temperature"] = temperature
    try:
        return [method.loss(**arguments)], [weight]
    except TypeError as error:
        raise ValueError(f"{name}: {error}") from None


SCHEMES = {
    "born_again": "born-again generations of the student, each teaching "
    "the next (generations=2)",
    "takd": "teacher -> assistant -> student (assistant=mlp|cnn|FILE: the "
    "built-in assistant or a model file)",
    "dml": "deep mutual learning: the student and peers copies of it learn "
    "together, no teacher (peers=1)",
    "function_matching": "teacher and student on the same shifted, mixed-up "
    "images, no labels (mixup_alpha=1.0, shift=0.1)",
}
_SCHEME_PARAMETERS = {
    "born_again": {"generations": 2},
    "takd": {"assistant": None},
    "dml": {"peers": 1},
    "function_matching": {"mixup_alpha": 1.0, "shift": 0.1},
}


def _scheme_parameters(name, parameters):
    if name not in SCHEMES:
        raise ValueError(
            f"Unknown scheme {name!r}. Choose one of: {', '.join(SCHEMES)}."
        )
    defaults = _SCHEME_PARAMETERS[name]
    unknown = set(parameters) - set(defaults)
    if unknown:
        raise ValueError(
            f"{name} has no parameter {', '.join(sorted(unknown))}. Its "
            f"parameters: {', '.join(defaults)}."
        )
    return {**defaults, **parameters}


def check_scheme(name, parameters):
    """Raises a `ValueError` for an unknown scheme or parameter."""
    _scheme_parameters(name, parameters)


def _assistant(assistant, student, load):
    if assistant in models.ARCHITECTURES:
        return models.build(
            assistant,
            "assistant",
            student.inputs[0].shape[1:],
            student.outputs[0].shape[-1],
        )
    if assistant is None:
        raise ValueError(
            "takd needs an assistant: --param assistant=mlp, cnn or a "
            ".h5/.keras model file."
        )
    return load(assistant)


def train_scheme(
    name,
    teacher,
    student,
    x,
    y,
    *,
    alpha,
    temperature,
    fit_kwargs,
    load=None,
    **parameters,
):
    """Trains `student` with the scheme `name`; returns the trained student.

    Args:
        name: A key of `SCHEMES`.
        teacher: The trained teacher (`None` for `"dml"`).
        student: The student to train.
        x: Training inputs.
        y: Training labels.
        alpha: Weight of the hard-label loss.
        temperature: KD temperature.
        fit_kwargs: Passed to every `fit`.
        load: Function loading a model file (for `assistant=FILE`).
            Defaults to `None`.
        **parameters: The scheme's parameters (see `SCHEMES`).

    Returns:
        The trained student.

    Example:

    ```python
    student = kd_keras.methods.train_scheme(
        "born_again", teacher, student, x_train, y_train,
        alpha=0.5, temperature=4.0, fit_kwargs={"epochs": 5},
        generations=2,
    )
    ```
    """
    parameters = _scheme_parameters(name, parameters)
    if name == "dml":
        peers = [
            models.copy_model(
                student, f"{student.name}_peer_{i + 1}", same_weights=False
            )
            for i in range(int(parameters["peers"]))
        ]
        cohort = MutualLearning([student, *peers], temperature=temperature)
        cohort.compile("adam", metrics=["accuracy"])
        cohort.fit(x, y, **fit_kwargs)
        return student
    if name == "function_matching":
        shift = parameters["shift"]
        matcher = FunctionMatching(
            teacher,
            student,
            augmentation=keras.layers.RandomTranslation(shift, shift)
            if len(student.inputs[0].shape) == 4 and shift
            else None,
            mixup_alpha=parameters["mixup_alpha"],
            temperature=temperature,
        )
        matcher.compile("adam", metrics=["accuracy"])
        matcher.fit(x, y, **fit_kwargs)
        return student
    chain = {
        "compile_kwargs": {"optimizer": "adam", "metrics": ["accuracy"]},
        "fit_kwargs": fit_kwargs,
        "distiller_kwargs": {"alpha": alpha, "temperature": temperature},
    }
    if name == "born_again":
        trained, _ = chains.born_again(
            teacher, student, int(parameters["generations"]), x, y, **chain
        )
        # The last generation, with the student's weights in place.
        student.set_weights(trained[-1].get_weights())
        return student
    assistant = _assistant(parameters["assistant"], student, load)
    chains.teacher_assistant_chain(teacher, [assistant], student, x, y, **chain)
    return student
