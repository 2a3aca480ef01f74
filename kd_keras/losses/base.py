"""What every distillation loss is built on.

Every loss is called as `loss(teacher_outputs, student_outputs)`: the
teacher's outputs take the place of Keras' `y_true`, the student's the
place of `y_pred`. Values are per sample, so `sample_weight` and
`reduction` work as for any `keras.losses.Loss`. They are computed in
float32 whatever the dtype of the inputs, so a mixed-precision student is
distilled exactly.
"""

import keras
from keras import ops

from kd_keras.hyperparameters import Hyperparameter, check_positive
from kd_keras.validation import compatible_shapes

PACKAGE = "kd_keras"


def as_float32(teacher_outputs, student_outputs):
    """Both outputs as float32 tensors."""
    return (
        ops.cast(teacher_outputs, "float32"),
        ops.cast(student_outputs, "float32"),
    )


# --- Logit standardisation ----------------------------------------------

# Added to the standard deviation, as in the reference code of Sun et al.
# (2024): constant logits standardise to 0 instead of 0 / 0.
STANDARDIZE_EPSILON = 1e-7


def check_bool(name, value):
    """`value` if it is `True` or `False`; raises a `TypeError` otherwise."""
    if not isinstance(value, bool):
        raise TypeError(
            f"{name} must be True or False. Received: {name}={value!r}"
        )
    return value


def standardize(logits):
    """Each row of logits z-scored: `(z - mean) / (1e-7 + std)`, float32.

    The logit standardisation of Sun et al. (2024), computed along the last
    axis as in their code: `std` is the unbiased standard deviation
    (`torch.std`'s default, dividing by `classes - 1`), and `1e-7` is added
    to it, so constant logits give 0 rather than NaN. Their gradient is
    finite but large, the centring divided by `1e-7`, as the formula's is
    (`torch.std`'s is NaN there). A single class gives 0 (`torch.std`
    gives NaN).

    Args:
        logits: Logits, shape `(batch, ..., classes)`.

    Returns:
        float32 logits of the same shape, each row of mean 0 and (unbiased)
        standard deviation 1, up to the `1e-7`.

    Example:

    >>> z = kd_keras.losses.base.standardize([[1.0, 2.0, 3.0]])  # std 1
    >>> [round(float(v), 4) for v in z[0]]
    [-1.0, 0.0, 1.0]

    References:
        - [Sun et al., 2024](https://arxiv.org/abs/2403.01427)
    """
    logits = ops.cast(logits, "float32")
    classes = ops.cast(ops.shape(logits)[-1], "float32")
    centred = logits - ops.mean(logits, axis=-1, keepdims=True)
    variance = ops.sum(ops.square(centred), axis=-1, keepdims=True)
    variance = variance / ops.maximum(classes - 1.0, 1.0)
    # The square root's gradient is infinite at 0, and 0 * inf is NaN:
    # take the standard deviation of a constant row as a constant 0.
    positive = variance > 0
    std = ops.where(positive, ops.sqrt(ops.where(positive, variance, 1.0)), 0.0)
    return centred / (STANDARDIZE_EPSILON + std)


def as_float32_logits(teacher_logits, student_logits, standardized=False):
    """Both logits as float32, each z-scored by `standardize` if
    `standardized`."""
    teacher, student = as_float32(teacher_logits, student_logits)
    if standardized:
        return standardize(teacher), standardize(student)
    return teacher, student


class DistillationLoss(keras.losses.Loss):
    """Base class of the losses called as `loss(teacher, student)`.

    Class attributes tell the `Distiller` what a loss needs:

    - `softmax_based`: the outputs are read as logits of a softmax, so a
      teacher ending in a sigmoid is refused.
    - `requires_labels`: the loss also needs the ground-truth labels, passed
      as `loss(teacher, student, labels=y)`; the `Distiller` passes them.
    - `teacher_layer` / `student_layer`: names of the layers whose outputs
      the loss compares; `None` means the models' outputs (logits).
    - `reads_outputs`: the models' outputs are passed as they return them,
      not as logits (`keras.distillation`'s losses read them so).
    - `config_names`: the constructor arguments `get_config` records, each
      read back from the attribute of the same name. A class lists its
      own; `get_config` adds those its base classes list.

    `make_adapter(teacher_shape, student_shape)` may return a layer mapping
    the student's features to the teacher's shape; the `Distiller` trains it
    with the student and never saves it into the student.
    `on_epoch_begin(epoch)` is called by `Distiller.fit` before each epoch,
    `on_train_end()` when training ends.

    Subclasses implement `call(teacher_outputs, student_outputs)`, returning
    one value per sample.

    Args:
        name: Name of the loss. Defaults to `None`, the class name in
            snake case.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> class L1Logits(kd_keras.losses.DistillationLoss):
    ...     def call(self, teacher, student):
    ...         difference = keras.ops.subtract(student, teacher)
    ...         return keras.ops.mean(keras.ops.abs(difference), axis=-1)
    >>> float(L1Logits()([[1.0, 2.0]], [[0.0, 0.0]]))
    1.5
    """

    softmax_based = False
    requires_labels = False
    teacher_layer = None
    student_layer = None
    reads_outputs = False
    config_names = ()

    def __call__(self, y_true, y_pred, sample_weight=None, labels=None):
        if self.requires_labels:
            if labels is None:
                raise ValueError(
                    f"{type(self).__name__} needs the ground-truth labels: "
                    "call it as loss(teacher, student, labels=y), or pass "
                    "labels to Distiller.fit."
                )
            y_true = (y_true, labels)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def make_adapter(self, teacher_shape, student_shape):
        """The layer mapping student features to the teacher's, or `None`."""
        return None

    def on_epoch_begin(self, epoch):
        """Called by `Distiller.fit` before epoch `epoch` (from 0)."""

    def on_train_end(self):
        """Called by `Distiller.fit` when training ends."""

    def get_config(self):
        """Keras' config plus the `config_names` of the class and its bases."""
        names = [
            name
            for cls in reversed(type(self).__mro__)
            for name in vars(cls).get("config_names", ())
        ]
        return {
            **super().get_config(),
            **{name: getattr(self, name) for name in names},
        }


class TemperatureLoss(DistillationLoss):
    """Base class of the softmax losses computed by `fn(t, s, temperature)`.

    `temperature` is a `Hyperparameter`: a schedule may change it during
    training without retracing the compiled step. With `standardize=True`
    `fn` is also passed `standardize=True` and must z-score the logits (see
    `standardize`) before dividing them by the temperature; when it is
    off, `fn` is called without that keyword. A subclass offering the
    switch lists `"standardize"` in its `config_names`.

    Args:
        fn: The per-sample function, e.g. `kd`.
        temperature: Softening temperature `T > 0`.
        reduction: Keras loss reduction.
        name: Name of the loss.
        dtype: Dtype of the computation.
        standardize: Whether `fn` z-scores both logits before the
            temperature. Defaults to `False`.

    Example:

    >>> loss = kd_keras.losses.TemperatureLoss(
    ...     kd_keras.losses.kd, 1.0, "sum_over_batch_size", "my_kd", None
    ... )
    >>> round(float(loss([[math.log(3.0), 0.0]], [[0.0, 0.0]])), 4)
    0.1308
    """

    softmax_based = True
    temperature = Hyperparameter(check_positive)
    config_names = ("temperature",)

    def __init__(
        self, fn, temperature, reduction, name, dtype, standardize=False
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self.temperature = temperature
        self.standardize = check_bool("standardize", standardize)

    def fn_keywords(self):
        """The keywords `call` passes to `fn`.

        `temperature`, and `standardize=True` when the switch is on.
        """
        if self.standardize:
            return {"temperature": self._temperature, "standardize": True}
        return {"temperature": self._temperature}

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self.fn_keywords())


# --- What the feature losses share --------------------------------------

# Smallest norm divided by, as in `torch.nn.functional.normalize`: an all-zero
# vector (a dead ReLU map, two equal embeddings) normalises to zero, not NaN.
NORM_EPSILON = 1e-12


def per_sample_mean(values):
    """Mean over every axis but the batch axis."""
    return ops.mean(values, axis=tuple(range(1, len(values.shape))))


def l2_normalize(x, axis=-1):
    """`x / max(||x||, 1e-12)` along `axis`, with a finite gradient at 0."""
    squared_norm = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x / ops.sqrt(ops.maximum(squared_norm, NORM_EPSILON**2))


def smooth_l1(x):
    """Huber loss with `delta=1` (PyTorch's `smooth_l1_loss`), elementwise."""
    magnitude = ops.abs(x)
    return ops.where(magnitude < 1.0, 0.5 * ops.square(x), magnitude - 0.5)


def flatten(features):
    """`features` as `(batch, everything else)`."""
    return ops.reshape(features, (ops.shape(features)[0], -1))


def _describe(side, layer):
    if layer is None:
        return f"the {side}'s output"
    return f"{side} layer {layer!r}"


def batch_shape(shape):
    """A per-sample shape with the batch axis (`None`) in front."""
    return (None, *tuple(shape))


def _shapes(teacher_shape, student_shape, teacher, student):
    return (
        f"{teacher} has features of shape {batch_shape(teacher_shape)} and "
        f"{student} of shape {batch_shape(student_shape)}"
    )


def check_spatial(method, teacher_shape, student_shape, teacher, student):
    """Raises unless two per-sample shapes agree on all axes but the last.

    `teacher` and `student` describe where the features come from, for the
    message.
    """
    teacher_shape, student_shape = tuple(teacher_shape), tuple(student_shape)
    shapes = _shapes(teacher_shape, student_shape, teacher, student)
    if len(teacher_shape) != len(student_shape):
        raise ValueError(
            f"{method} compares features of the same rank, but {shapes}. "
            "Pick layers of the same kind (both convolutional, or both "
            "dense)."
        )
    if not compatible_shapes(teacher_shape[:-1], student_shape[:-1]):
        raise ValueError(
            f"{method} compares features position by position, but {shapes}: "
            "their spatial sizes differ. Pick a teacher and a student layer "
            "with the same height and width, e.g. the ends of stages after "
            "the same number of downsamplings."
        )


def check_image_features(
    method, teacher_shape, student_shape, teacher, student
):
    """Raises unless both per-sample shapes are `(height, width, channels)`.

    `teacher` and `student` describe where the features come from, for the
    message.
    """
    teacher_shape, student_shape = tuple(teacher_shape), tuple(student_shape)
    if len(teacher_shape) != 3 or len(student_shape) != 3:
        raise ValueError(
            f"{method} needs image features of shape (batch, height, width, "
            f"channels), but "
            f"{_shapes(teacher_shape, student_shape, teacher, student)}. "
            "Pick convolutional layers."
        )


def _check_layer(name, value):
    if value is not None and not isinstance(value, str):
        raise TypeError(
            f"{name} must be a layer name (str) or None. "
            f"Received: {name}={value!r}"
        )
    return value


class FeatureLoss(DistillationLoss):
    """A `DistillationLoss` reading the outputs of two named layers."""

    config_names = ("teacher_layer", "student_layer")

    def __init__(self, teacher_layer, student_layer, reduction, name, dtype):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.teacher_layer = _check_layer("teacher_layer", teacher_layer)
        self.student_layer = _check_layer("student_layer", student_layer)

    def _describe(self):
        return (
            _describe("teacher", self.teacher_layer),
            _describe("student", self.student_layer),
        )

    def _shapes(self, teacher_shape, student_shape):
        return _shapes(teacher_shape, student_shape, *self._describe())

    def _check_image_features(self, teacher_shape, student_shape):
        check_image_features(
            type(self).__name__, teacher_shape, student_shape, *self._describe()
        )

    def _check_spatial(self, teacher_shape, student_shape):
        check_spatial(
            type(self).__name__, teacher_shape, student_shape, *self._describe()
        )
