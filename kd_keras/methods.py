"""The distillation methods by name: one registry for the library, the
command line and the benchmarks.

`REGISTRY` holds every method as a `Method`: its name, a one-line summary
and its defaults. A loss method names a loss of `kd_keras.losses`, with the
weight its term gets against the other terms and the defaults of its paper:
`distillation_losses("dkd", temperature=4.0, nckd_weight=8.0)` builds what
`Distiller(distillation_loss=..., distillation_loss_weights=...)` takes.
A scheme trains differently: several models in turn or at once, or
augmented batches; `train_scheme` runs one with Hinton KD. `METHODS` and
`SCHEMES` are the two kinds, in the registry's order.

Importing this module loads neither TensorFlow nor Keras: a loss class is
named here and looked up in `kd_keras.losses` only when a loss is built or
its parameters are read, so `kd-keras --help` lists the methods at once.
"""

import dataclasses
import importlib
import inspect
import json

from kd_keras.hyperparameters import DEFAULT_TEMPERATURE

# Arguments of a loss that are not the user's to set with `--param`.
_NOT_PARAMETERS = ("self", "reduction", "name", "dtype", "temperature")


@dataclasses.dataclass(frozen=True)
class Method:
    """A named distillation method: a loss, or a training scheme.

    Args:
        name: The name, as `kd-keras distill --method` takes it.
        summary: One line for `--help`.
        loss_name: Name of the method's class in `kd_keras.losses`, or
            `None` for a scheme. Defaults to `None`.
        weight: Default weight of a loss's term. Feature losses are small
            numbers and get the weight their paper's code gives them.
            Defaults to `1.0`.
        defaults: For a loss, the defaults of its arguments that differ
            from the class's own (the paper's settings for the
            benchmarks); for a scheme, every parameter with its default.
            Defaults to `{}`.
        required: Parameters without a default that must be given, each
            with what it takes, for `--help` (e.g. `{"teacher_layer":
            "NAME"}`). Defaults to `{}`.
        teacher: Whether the method learns from a teacher (`dml` trains
            students together without one). Defaults to `True`.

    Example:

    >>> method = kd_keras.methods.METHODS["fitnet"]
    >>> method.loss.__name__, method.weight
    ('FitNet', 100.0)
    >>> kd_keras.methods.SCHEMES["born_again"].defaults
    {'generations': 2}
    """

    name: str
    summary: str
    loss_name: str | None = None
    weight: float = 1.0
    defaults: dict = dataclasses.field(default_factory=dict)
    required: dict = dataclasses.field(default_factory=dict)
    teacher: bool = True

    @property
    def is_scheme(self):
        """Whether the method is a training scheme rather than a loss."""
        return self.loss_name is None

    @property
    def loss(self):
        """The `kd_keras.losses` class (imports Keras), `None` for a scheme."""
        if self.is_scheme:
            return None
        return getattr(
            importlib.import_module("kd_keras.losses"), self.loss_name
        )

    @property
    def parameters(self):
        """Names of the parameters a user may set, besides a loss's weight."""
        if self.is_scheme:
            return [*self.required, *self.defaults]
        signature = inspect.signature(self.loss.__init__).parameters
        return [name for name in signature if name not in _NOT_PARAMETERS]

    @property
    def tempered(self):
        """Whether the temperature applies (every scheme uses Hinton KD)."""
        if self.is_scheme:
            return True
        return "temperature" in inspect.signature(self.loss.__init__).parameters


_LAYERS = {"teacher_layer": "NAME", "student_layer": "NAME"}

REGISTRY = {
    method.name: method
    for method in (
        Method("kd", "Hinton KD: T^2 KL of softened probabilities", "KD"),
        Method(
            "soft_ce", "cross-entropy to soft targets", "SoftTargetCrossEntropy"
        ),
        Method("logit_mse", "MSE between logits", "LogitMSE"),
        Method(
            "dkd",
            "decoupled KD (warm-up: 1 epoch; the paper: 20 of 240)",
            "DKD",
            defaults={"warmup": 1},
        ),
        Method("dist", "DIST: inter- and intra-class correlation", "DIST"),
        Method(
            "multilabel",
            "per-label sigmoid KD for multi-label teachers",
            "MultiLabelKD",
        ),
        Method(
            "regression",
            "MSE or Huber to the teacher's outputs",
            "RegressionKD",
        ),
        Method(
            "fitnet",
            "FitNets hints on named layers",
            "FitNet",
            weight=100.0,
            required=_LAYERS,
        ),
        Method(
            "at",
            "attention transfer on named layers",
            "AttentionTransfer",
            weight=1000.0,
            required=_LAYERS,
        ),
        Method(
            "rkd",
            "relational KD: distances and angles between samples, of the "
            "outputs or of named layers (teacher_layer, student_layer)",
            "RKD",
        ),
        Method(
            "sp",
            "similarity-preserving: the batch's similarity matrices, of "
            "the outputs or of named layers",
            "SP",
            weight=3000.0,
        ),
        Method(
            "pkt",
            "probabilistic knowledge transfer: the batch's cosine-kernel "
            "distributions, of the outputs or of named layers",
            "PKT",
            weight=30000.0,
        ),
        Method(
            "cc",
            "correlation congruence (the released code's form), of the "
            "outputs or of named layers",
            "CC",
            weight=0.02,
        ),
        Method(
            "nst",
            "neuron selectivity transfer: MMD of the feature maps of named "
            "layers",
            "NST",
            weight=50.0,
            required=_LAYERS,
        ),
        Method(
            "nkd",
            "normalized KD: the target's and the non-targets' distributions",
            "NKD",
        ),
        Method(
            "wsld",
            "weighted soft labels: KD weighted per sample by the student's "
            "and the teacher's cross-entropy",
            "WSLD",
            weight=2.5,
        ),
        Method(
            "born_again",
            "born-again generations of the student, each teaching the next",
            defaults={"generations": 2},
        ),
        Method(
            "takd",
            "teacher assistant KD: teacher -> assistant -> student",
            required={"assistant": "mlp|cnn|FILE"},
        ),
        Method(
            "dml",
            "deep mutual learning: the student and peers copies of it learn "
            "together",
            defaults={"peers": 1},
            teacher=False,
        ),
        Method(
            "function_matching",
            "teacher and student on the same shifted, mixed-up images, no "
            "labels",
            defaults={"mixup_alpha": 1.0, "shift": 0.1},
        ),
    )
}
METHODS = {name: m for name, m in REGISTRY.items() if not m.is_scheme}
SCHEMES = {name: m for name, m in REGISTRY.items() if m.is_scheme}


def parse_value(text):
    """`"8"` -> 8, `"true"` -> True, `"pool_1"` -> "pool_1"."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def distillation_losses(name, temperature=DEFAULT_TEMPERATURE, **parameters):
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
    if name in SCHEMES:
        raise ValueError(
            f"{name} is a scheme, not a loss: train with it by train_scheme."
        )
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


def _scheme_parameters(name, parameters):
    if name not in SCHEMES:
        raise ValueError(
            f"Unknown scheme {name!r}. Choose one of: {', '.join(SCHEMES)}."
        )
    scheme = SCHEMES[name]
    unknown = set(parameters) - set(scheme.parameters)
    if unknown:
        raise ValueError(
            f"{name} has no parameter {', '.join(sorted(unknown))}. Its "
            f"parameters: {', '.join(scheme.parameters)}."
        )
    # A required parameter left out is None, refused where it is used.
    return {**dict.fromkeys(scheme.required), **scheme.defaults, **parameters}


def check_scheme(name, parameters):
    """Raises a `ValueError` for an unknown scheme or parameter."""
    _scheme_parameters(name, parameters)


def _assistant(assistant, student, load):
    from kd_keras import models

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
    cache="auto",
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
        cache: The `cache` of the Distiller the teacher teaches in the
            chains (`born_again`, `takd`): a `kd_keras.TeacherStore` of
            the teacher's outputs on `(x, y)` spares its pass; `dml` and
            `function_matching` take none. Defaults to `"auto"`.
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
    import keras

    from kd_keras import chains, models
    from kd_keras.function_matching import FunctionMatching
    from kd_keras.mutual import MutualLearning

    parameters = _scheme_parameters(name, parameters)
    if name in ("dml", "function_matching") and cache != "auto":
        raise ValueError(
            f"{name} takes no cache: "
            + (
                "it has no teacher."
                if name == "dml"
                else "it changes each batch before the teacher sees it, "
                "so its teacher runs at every step."
            )
            + f" Received: cache={cache!r}"
        )
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
        "distiller_kwargs": {
            "alpha": alpha,
            "temperature": temperature,
            "cache": cache,
        },
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


__all__ = [
    "Method",
    "REGISTRY",
    "METHODS",
    "SCHEMES",
    "distillation_losses",
    "train_scheme",
]
