"""Multi-teacher distillation: several teachers combined into one.

`ensemble` builds a functional `keras.Model` that runs every teacher on the
same inputs and returns the ensemble's logits, so it is an ordinary teacher
for `kd_keras.Distiller`. The averaging is the registered layer
`EnsembleAverage`, so the ensemble saves and loads as `.keras` or `.h5`
with `safe_mode=True`.
"""

import math

import keras
from keras import ops

from kd_keras.hyperparameters import check_non_negative
from kd_keras.validation import check_model_list
from kd_keras.views import output_activation, single_output, to_logits

AVERAGES = ("probabilities", "logits")


def _check_average(average):
    if average not in AVERAGES:
        raise ValueError(
            f"average must be one of {AVERAGES}. Received: average={average!r}"
        )
    return average


def _normalized_weights(weights, count=None, name="weights"):
    """`weights` as floats summing to 1; uniform over `count` if `None`.

    Args:
        weights: `None` or non-negative numbers, not all zero.
        count: Number of teachers, or `None` for any number.
        name: Argument name for error messages.

    Returns:
        A list of floats summing to 1.
    """
    if weights is None:
        return [1.0 / count] * count
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
        raise TypeError(
            f"{name} must be a list of numbers. Received: {name}={weights!r}"
        )
    if count is not None and len(weights) != count:
        raise ValueError(
            f"{name} must have one number per teacher ({count}). "
            f"Received: {name}={list(weights)!r}"
        )
    weights = [
        check_non_negative(f"{name}[{i}]", w) for i, w in enumerate(weights)
    ]
    if not sum(weights) > 0:
        raise ValueError(
            f"{name} must not all be zero. Received: {name}={weights!r}"
        )
    return [w / sum(weights) for w in weights]


@keras.saving.register_keras_serializable(package="kd_keras")
class EnsembleAverage(keras.layers.Layer):
    """Averages the outputs of several teachers into ensemble logits.

    Called on a list of teacher outputs of one shape, it returns logits
    whose softmax is the ensemble's prediction. Outputs marked `"softmax"`
    in `activations` are read as log-probabilities, `"sigmoid"` outputs as
    the logits the sigmoid was applied to (`kd_keras.views.to_logits`).
    Computed in float32.

    Formula:

    ```python
    z_i = to_logits(outputs[i], activations[i])
    # average="probabilities":
    logits = log(sum(w_i * softmax(z_i)))
    # average="logits":
    logits = sum(w_i * z_i)
    ```

    The probability average is the ensemble of Hinton et al.; the logit
    average is the normalised geometric mean of the teachers'
    probabilities. A distiller's temperature `T` is applied to the
    ensemble's logits: with `average="probabilities"` and `T != 1` the soft
    targets are `softmax(logits / T)`, the sharpened or softened average,
    not the average of the teachers' softened probabilities.

    Args:
        average: `"probabilities"` or `"logits"`: what is averaged.
            Defaults to `"probabilities"`.
        teacher_weights: Non-negative weight of each input, normalised to
            sum to 1. Defaults to `None`, uniform.
        activations: The output activation of each input (`None`,
            `"softmax"` or `"sigmoid"`). Defaults to `None`, all logits.
        **kwargs: Passed to `keras.layers.Layer` (`name`, `dtype`, ...).

    Example:

    >>> average = kd_keras.teachers.EnsembleAverage(average="logits")
    >>> outputs = [np.array([[1.0, 3.0]]), np.array([[3.0, 1.0]])]
    >>> keras.ops.convert_to_numpy(average(outputs))
    array([[2., 2.]], dtype=float32)

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
        - [You et al., 2017, Learning from Multiple Teacher Networks](
          https://doi.org/10.1145/3097983.3098135)
    """

    def __init__(
        self,
        average="probabilities",
        teacher_weights=None,
        activations=None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.average = _check_average(average)
        self.teacher_weights = (
            None
            if teacher_weights is None
            else _normalized_weights(teacher_weights, name="teacher_weights")
        )
        self.activations = None if activations is None else list(activations)
        if average == "probabilities" and "sigmoid" in (activations or ()):
            raise ValueError(
                'average="probabilities" averages softmax distributions, but '
                "a teacher ends in a sigmoid (independent probabilities). "
                'Use average="logits". '
                f"Received: activations={self.activations}"
            )

    def _per_input(self, values, name, count):
        if values is not None and len(values) != count:
            raise ValueError(
                f"{name} has {len(values)} entries for {count} inputs. "
                f"Received: {name}={values}"
            )

    def build(self, input_shape):
        count = len(input_shape)
        self._per_input(self.teacher_weights, "teacher_weights", count)
        self._per_input(self.activations, "activations", count)
        shapes = {tuple(shape[1:]) for shape in input_shape}
        if len(shapes) > 1:
            raise ValueError(
                "EnsembleAverage takes inputs of one shape. "
                f"Received shapes: {[tuple(s) for s in input_shape]}"
            )
        if self.average == "probabilities" and input_shape[0][-1] == 1:
            raise ValueError(
                'average="probabilities" averages softmax distributions over '
                "classes, but the outputs have a single unit "
                f'{tuple(input_shape[0])}. Use average="logits".'
            )

    def call(self, inputs):
        count = len(inputs)
        weights = self.teacher_weights or _normalized_weights(None, count)
        activations = self.activations or [None] * count
        terms = [
            (w, to_logits(z, a))
            for w, z, a in zip(weights, inputs, activations, strict=True)
            if w > 0
        ]
        if self.average == "logits":
            return sum(w * z for w, z in terms)
        # log(sum(w_i p_i)) as a log-sum-exp of log(w_i) + log_softmax(z_i):
        # exact where the probabilities underflow.
        return ops.logsumexp(
            ops.stack(
                [math.log(w) + ops.log_softmax(z, axis=-1) for w, z in terms]
            ),
            axis=0,
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {
            **super().get_config(),
            "average": self.average,
            "teacher_weights": self.teacher_weights,
            "activations": self.activations,
        }


def _signature(model, role):
    """`(input spec, output shape)` of a model with defined inputs."""
    output = single_output(model, role)
    if output is None or not getattr(model, "inputs", None):
        raise ValueError(
            f"{role} {model.name!r} has no defined inputs and outputs. "
            "Use functional or Sequential teachers built on keras.Input."
        )
    spec = keras.tree.map_structure(
        lambda t: (tuple(t.shape[1:]), t.dtype), model.input
    )
    return spec, tuple(output.shape[1:])


def _check_teachers(teachers):
    check_model_list("teachers", teachers)
    names = {}
    for teacher in teachers:
        if names.setdefault(teacher.name, teacher) is not teacher:
            raise ValueError(
                f"Two teachers are named {teacher.name!r}; the ensemble "
                "needs distinct names. Rename one (teacher.name = ...)."
            )
    first_spec, first_shape = _signature(teachers[0], "teachers[0]")
    for i, teacher in enumerate(teachers[1:], start=1):
        spec, shape = _signature(teacher, f"teachers[{i}]")
        if spec != first_spec:
            raise ValueError(
                "All teachers must take the same inputs. Received: "
                f"teachers[0] takes {first_spec}, teachers[{i}] takes {spec}."
            )
        if shape != first_shape:
            raise ValueError(
                "All teachers must have the same output shape. Received: "
                f"teachers[0] outputs {first_shape}, teachers[{i}] "
                f"outputs {shape}."
            )


def ensemble(
    teachers, average="probabilities", weights=None, name="teacher_ensemble"
):
    """Combines teachers into one model that outputs the ensemble's logits.

    The returned functional `keras.Model` takes the teachers' (shared)
    inputs, runs every teacher and averages their outputs with an
    `EnsembleAverage` layer. It is a teacher like any other: pass it to
    `kd_keras.Distiller`, cache its outputs, save it as `.keras` or `.h5`.
    The teachers are used as they are (not copied); the `Distiller`
    freezes them with the ensemble.

    Teachers ending in a softmax are read as log-probabilities, so models
    returning logits and models returning probabilities can be mixed.

    Formula:

    ```python
    w = weights / sum(weights)
    # average="probabilities":
    logits = log(sum_i w_i * softmax(z_i))
    # average="logits":
    logits = sum_i w_i * z_i
    ```

    Args:
        teachers: A non-empty list of functional or Sequential
            `keras.Model`s with the same inputs, one output each of the same
            shape, and distinct names.
        average: `"probabilities"` (the ensemble of Hinton et al.) or
            `"logits"` (needed for sigmoid or single-unit outputs). Defaults
            to `"probabilities"`.
        weights: One non-negative weight per teacher, not all zero;
            normalised to sum to 1. A teacher of weight 0 contributes
            nothing.
            Defaults to `None`, uniform weights.
        name: Name of the returned model. Defaults to
            `"teacher_ensemble"`.

    Returns:
        A functional `keras.Model` outputting float32 logits.

    Example:

    ```python
    teacher = kd_keras.teachers.ensemble([resnet, vit], weights=[2, 1])
    distiller = kd_keras.Distiller(teacher, student)
    ```

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
        - [You et al., 2017, Learning from Multiple Teacher Networks](
          https://doi.org/10.1145/3097983.3098135)
    """
    _check_teachers(teachers)
    _check_average(average)
    weights = _normalized_weights(weights, len(teachers))
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype),
        teachers[0].input,
    )
    activations = [output_activation(teacher) for teacher in teachers]
    average_layer = EnsembleAverage(
        average=average,
        teacher_weights=weights,
        activations=activations,
        name=f"{name}_average",
    )
    outputs = average_layer([teacher(inputs) for teacher in teachers])
    return keras.Model(inputs, outputs, name=name)


__all__ = ["EnsembleAverage", "ensemble"]
