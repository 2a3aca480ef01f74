"""FitNets hints: the student's features regressed onto the teacher's."""

import keras
from keras import ops

from kd_keras.losses.base import (
    PACKAGE,
    FeatureLoss,
    as_float32,
    batch_shape,
    per_sample_mean,
)
from kd_keras.validation import compatible_shapes


def fitnet_hint(teacher_features, student_features):
    """FitNets hint loss: mean squared error between features, per sample.

    The functional form of `FitNet`, without its adapter; see `FitNet` for
    the formula and references.

    Args:
        teacher_features: Teacher features, shape `(batch, ...)`.
        student_features: Student features already mapped to the
            teacher's shape (by `FitNet`'s adapter), the same shape.

    Returns:
        The squared error averaged over all feature axes, one value per
        sample.

    Example:

    >>> loss = kd_keras.losses.fitnet_hint([[1.0, 2.0]], [[0.0, 0.0]])
    >>> float(loss[0])
    2.5
    """
    t, s = as_float32(teacher_features, student_features)
    if not compatible_shapes(t.shape[1:], s.shape[1:]):
        raise ValueError(
            "fitnet_hint compares features of the same shape. Received: "
            f"teacher_features.shape={t.shape}, "
            f"student_features.shape={s.shape}"
        )
    return per_sample_mean(ops.square(s - t))


def _check_adapter(adapter):
    if adapter is True or adapter is False or adapter == "auto":
        return adapter
    raise ValueError(
        f"adapter must be 'auto', True or False. Received: adapter={adapter!r}"
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class FitNet(FeatureLoss):
    """FitNets hint loss: the student regresses the teacher's features.

    A "hint" layer of the teacher guides a layer of the student: a small
    learned regressor (the adapter) maps the student's features to the
    teacher's shape and the squared error between the two is minimised.
    `make_adapter` builds that regressor: a 1x1 `Conv2D` for image features,
    a `Dense` layer for vectors (or any other rank: it maps the last axis);
    the `Distiller` trains it with the student and never saves it into the
    student.

    The value is the mean of the squared error over all feature axes, so
    with the default reduction it is the mean over every element of the
    batch: RepDistiller's `HintLoss` (`nn.MSELoss()`). The paper writes the
    per-sample loss as `1/2 * ||u_h - r(v_g)||**2`, a sum over the `n`
    feature elements: it equals this loss times `n / 2`, so the gradients
    differ by that constant factor only. The paper's regressor matches
    spatial sizes with a larger convolution kernel and has the teacher's
    non-linearity; here spatial sizes must be equal and the adapter is
    linear.

    Formula:

    ```python
    loss = mean(square(adapter(student_features) - teacher_features),
                axis=all but the batch axis)
    ```

    Args:
        teacher_layer: Name of the teacher layer giving the hint, or `None`
            for the teacher's output.
        student_layer: Name of the student layer guided by it, or `None`
            for the student's output.
        adapter: `"auto"` builds an adapter only when the features' shapes
            differ, `True` always, `False` never (features of different
            shapes then raise a `ValueError`). Defaults to `"auto"`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss, and prefix of the adapter's name. Defaults
            to `"fitnet"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.FitNet("teacher_conv", "student_conv")
    >>> float(loss([[1.0, 2.0]], [[3.0, 2.0]]))  # (2**2 + 0**2) / 2
    2.0
    >>> loss.make_adapter((8, 8, 64), (8, 8, 16)).name
    'fitnet_adapter'

    References:
        - [Romero et al., 2015](https://arxiv.org/abs/1412.6550)
    """

    config_names = ("adapter",)

    def __init__(
        self,
        teacher_layer,
        student_layer,
        adapter="auto",
        reduction="sum_over_batch_size",
        name="fitnet",
        dtype=None,
    ):
        super().__init__(teacher_layer, student_layer, reduction, name, dtype)
        self.adapter = _check_adapter(adapter)

    def make_adapter(self, teacher_shape, student_shape):
        """The regressor mapping student features to the teacher's shape.

        Args:
            teacher_shape: Shape of the teacher's features without the
                batch axis, e.g. `(8, 8, 64)`.
            student_shape: Shape of the student's features without the
                batch axis, e.g. `(8, 8, 16)`.

        Returns:
            `None` when no adapter is needed (`adapter="auto"` and equal
            shapes, or `adapter=False`), else a layer named
            `f"{name}_adapter"`, already built for `student_shape`: a
            `Conv2D(channels, 1)` for 4-D features, a `Dense(units)` for
            the others.

        Raises:
            ValueError: The features differ in rank or spatial size, or
                differ in channels while `adapter=False`.
        """
        teacher_shape = tuple(teacher_shape)
        self._check_spatial(teacher_shape, student_shape)
        channels = teacher_shape[-1]
        needed = not compatible_shapes((channels,), (student_shape[-1],))
        if self.adapter is False:
            if needed:
                raise ValueError(
                    "FitNet(adapter=False) needs features of the same "
                    f"shape, but {self._shapes(teacher_shape, student_shape)}"
                    ". Pass adapter='auto' to learn a mapping between them."
                )
            return None
        if self.adapter == "auto" and not needed:
            return None
        if channels is None:
            raise ValueError(
                "FitNet's adapter needs the number of channels of "
                f"{self._describe()[0]}. Received: "
                f"teacher_shape={batch_shape(teacher_shape)}"
            )
        name = f"{self.name}_adapter"
        if len(teacher_shape) == 3:
            layer = keras.layers.Conv2D(channels, 1, name=name)
        else:
            layer = keras.layers.Dense(channels, name=name)
        layer.build(batch_shape(student_shape))
        return layer

    def call(self, y_true, y_pred):
        y_true, y_pred = as_float32(y_true, y_pred)
        if not compatible_shapes(y_true.shape[1:], y_pred.shape[1:]):
            raise ValueError(
                "FitNet compares the teacher's features with the student's "
                "mapped to their shape by the adapter, but "
                f"{self._shapes(y_true.shape[1:], y_pred.shape[1:])}. "
                "kd_keras.Distiller applies the adapter of make_adapter(); "
                "called directly, the loss needs the adapted features."
            )
        return fitnet_hint(y_true, y_pred)
