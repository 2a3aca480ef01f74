"""The distillation methods by name, for the command line and benchmarks.

Each method is a loss of `kd_keras.losses` with the weight it gets against
the other terms and the defaults of its paper. `distillation_losses("dkd",
temperature=4.0, beta=8.0)` builds what `Distiller(distillation_loss=...,
distillation_loss_weights=...)` takes.
"""

import dataclasses
import inspect
import json

from kd_keras import losses


@dataclasses.dataclass(frozen=True)
class Method:
    """A named distillation method.

    Args:
        loss: The `kd_keras.losses` class.
        summary: One line for `--help`.
        weight: Default weight of its term. Feature losses are small
            numbers and get the weight their paper's code gives them.
        defaults: Defaults of the loss's arguments that differ from the
            class's own (the paper's settings for the benchmarks).
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

    Raises:
        ValueError: For an unknown method or argument.
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
