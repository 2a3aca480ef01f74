"""`keras.distillation`'s losses, accepted by the `Distiller` as they are.

`LogitsDistillation` and `FeatureDistillation` take `keras.distillation`'s
arguments and subclass its classes, so code written for Keras runs with
kd_keras by changing the import. One thing differs on purpose: Keras 3.15
resolves `LogitsDistillation`'s default `loss="kl_divergence"` to the
function `keras.losses.kl_divergence`, which it applies to the softened
logits themselves (no softmax, no `T**2`); only a `keras.losses.KLDivergence`
instance gets Hinton's loss. kd_keras computes Hinton's
`T**2 * KL(softmax(t / T) || softmax(s / T))` for the string, the function
and the class alike.

`KerasLoss` is how the `Distiller` runs any `keras.distillation.
DistillationLoss` (a user's own subclass included): it calls its
`validate_outputs` and `compute_loss` on what `keras.distillation.
Distiller` passes, the models' outputs as they return them or the named
layers' outputs.
"""

import re
import warnings

import keras
from keras import ops

from kd_keras import views
from kd_keras.losses.base import PACKAGE, DistillationLoss

_KL_NAMES = ("kl_divergence", "kld", "kullback_leibler_divergence")


def _hinton_kl(loss):
    """`loss` with the KL divergence given as a string or function replaced
    by a `keras.losses.KLDivergence`, which `LogitsDistillation` computes
    as Hinton's loss."""
    if loss is keras.losses.kl_divergence or (
        isinstance(loss, str) and loss.lower() in _KL_NAMES
    ):
        return keras.losses.KLDivergence()
    return loss


def _snake_case(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _reads_kl_function(loss):
    return any(
        leaf is keras.losses.kl_divergence for leaf in keras.tree.flatten(loss)
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class LogitsDistillation(keras.distillation.LogitsDistillation):
    """`keras.distillation.LogitsDistillation`, with Hinton's loss by default.

    Softens the teacher's and the student's logits by `temperature` and
    applies `loss` to them, output by output (`loss` may be a list or dict
    matching the models' outputs, `None` skipping an output). A KL
    divergence, given as `"kl_divergence"` (the default), as
    `keras.losses.kl_divergence` or as `keras.losses.KLDivergence()`, is
    Hinton's loss, `T**2 * KL(softmax(t / T) || softmax(s / T))`, summed
    over classes and averaged over the batch; any other loss is applied to
    the softened logits, as Keras does. (Keras 3.15 computes the KL
    default on the softened logits themselves: 1.213 where Hinton's loss
    is 3.506 for teacher logits `[5, 1, -2]`, student `[1, 2, 0]`, T=4.)

    The models' outputs are read as they return them: for a model ending
    in a softmax, use `kd_keras.losses.KD`, which reads its logits.

    Formula:

    ```python
    # KL divergence, p = softmax(t / T) and q = softmax(s / T):
    loss = T**2 * mean_over_batch(sum(p * log(p / q), axis=-1))
    # any other loss:
    loss = mean(loss_fn(t / T, s / T))
    ```

    Args:
        temperature: Softening temperature `T > 0`. Defaults to `3.0`.
        loss: The loss of each output: a name, a Keras loss or function, a
            list or dict of them, `None` to skip an output. Defaults to
            `"kl_divergence"`.

    Example:

    >>> loss = kd_keras.losses.LogitsDistillation(temperature=4.0)
    >>> teacher = np.array([[5.0, 1.0, -2.0]], "float32")
    >>> student = np.array([[1.0, 2.0, 0.0]], "float32")
    >>> round(float(loss.compute_loss(teacher, student)), 3)
    3.506

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
    """

    def __init__(self, temperature=3.0, loss="kl_divergence"):
        super().__init__(
            temperature=temperature,
            loss=keras.tree.map_structure(_hinton_kl, loss),
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class FeatureDistillation(keras.distillation.FeatureDistillation):
    """`keras.distillation.FeatureDistillation`, with nested layer paths.

    `loss` between the outputs of a teacher and a student layer (the
    models' outputs by default). As Keras' class, except that a layer
    inside a nested model (an Application behind augmentation layers) is
    named by its path, `"MobileNetV3Small/expanded_conv_2_add"`, as in
    every kd_keras feature loss, and a name that is not found is reported
    with the model's layers.
    The two outputs must have the same shape; `kd_keras.losses.FitNet`
    learns a map between layers of different widths.

    Formula:

    ```python
    loss = mean(loss_fn(teacher_features, student_features))
    ```

    Args:
        loss: The loss: a name, a Keras loss or function, a list or dict
            of them for layers with several outputs, `None` to skip one.
            Defaults to `"mse"`.
        teacher_layer_name: Name or path of the teacher's layer. Defaults
            to `None`, its output.
        student_layer_name: Name or path of the student's layer. Defaults
            to `None`, its output.

    Example:

    >>> loss = kd_keras.losses.FeatureDistillation("mse")
    >>> teacher, student = np.array([[1.0, 2.0]]), np.array([[1.0, 0.0]])
    >>> float(loss.compute_loss(teacher, student))
    2.0

    References:
        - [Romero et al., 2015](https://arxiv.org/abs/1412.6550)
    """

    def validate_model_compatibility(self, teacher, student):
        """Raises a `ValueError` naming the layers of a model that has no
        layer of the name given."""
        for role, model, name in (
            ("teacher", teacher, self.teacher_layer_name),
            ("student", student, self.student_layer_name),
        ):
            if name is not None and getattr(model, "built", True):
                views.layer_output(model, name, role)


class KerasLoss(DistillationLoss):
    """A `keras.distillation.DistillationLoss` as the `Distiller` runs it.

    Reads what `keras.distillation.Distiller` gives the loss: with a
    `teacher_layer_name`, that layer's output and the student's
    `student_layer_name` layer (or output); without one, the two models'
    outputs as they return them. Calls its `validate_outputs`, then its
    `compute_loss`, which returns the batch's value (sample weights do not
    apply to it, as in Keras). A `keras.distillation.LogitsDistillation`
    with the KL divergence as a function (Keras' default) is computed as
    `kd_keras.losses.LogitsDistillation`, Hinton's loss, with a warning.

    Args:
        loss: The `keras.distillation.DistillationLoss`.
    """

    reads_outputs = True

    def __init__(self, loss):
        # Named as Keras names its losses, for the logs.
        super().__init__(name=_snake_case(type(loss).__name__))
        self.loss = loss
        self.teacher_layer = getattr(loss, "teacher_layer_name", None)
        # Keras reads the student's layer only beside a teacher's layer.
        self.student_layer = (
            getattr(loss, "student_layer_name", None)
            if self.teacher_layer
            else None
        )
        self._computed = loss
        if isinstance(
            loss, keras.distillation.LogitsDistillation
        ) and _reads_kl_function(loss.loss):
            warnings.warn(
                "keras.distillation.LogitsDistillation(loss='kl_divergence') "
                "applies kl_divergence to the softened logits in Keras 3.15 "
                "(no softmax, no T**2); kd_keras computes Hinton's "
                "T**2 * KL(softmax(t / T) || softmax(s / T)) instead, as "
                "kd_keras.losses.LogitsDistillation does.",
                # Shown once: always from this line.
                stacklevel=1,
            )
            self._computed = LogitsDistillation(loss.temperature, loss.loss)

    def __call__(
        self, teacher_outputs, student_outputs, sample_weight=None, labels=None
    ):
        self._computed.validate_outputs(teacher_outputs, student_outputs)
        value = self._computed.compute_loss(teacher_outputs, student_outputs)
        if len(getattr(value, "shape", ())) > 0:
            raise ValueError(
                f"{type(self.loss).__name__}.compute_loss must return a "
                f"scalar. Received: a value of shape {tuple(value.shape)}."
            )
        return ops.cast(value, "float32")


def as_distillation_loss(loss):
    """`loss` as the `Distiller` computes it: a `kd_keras.losses` loss as
    it is, a `keras.distillation.DistillationLoss` in a `KerasLoss`.

    Raises:
        TypeError: For anything else.
    """
    if isinstance(loss, DistillationLoss):
        return loss
    if isinstance(loss, keras.distillation.DistillationLoss):
        return KerasLoss(loss)
    raise TypeError(
        "distillation_loss must be a kd_keras.losses loss called as "
        "loss(teacher_outputs, student_outputs), such as "
        "kd_keras.losses.KD(temperature=2.0), a keras.distillation."
        "DistillationLoss (LogitsDistillation, FeatureDistillation or your "
        "own), or a list of them; Distiller.compile(distillation_loss_fn=...) "
        f"wraps any Keras loss. Received: distillation_loss={loss!r}"
    )


def is_keras_style(loss):
    """Whether `loss` is one of `keras.distillation`'s, whose users expect
    its defaults (a hard-label weight of 0.5)."""
    return isinstance(loss, keras.distillation.DistillationLoss)
