"""Feature distillation losses: FitNets hints, attention transfer, RKD.

These losses compare intermediate features rather than logits. Each names
the layers it reads in `teacher_layer` and `student_layer` (`None` is the
model's output); the `Distiller` extracts those layers' outputs, maps the
student's through the loss's adapter when `make_adapter` gives one, and
calls `loss(teacher_features, student_features)`. Features are channels-last
as in Keras: `(batch, height, width, channels)` for images, `(batch, units)`
for vectors. Values are per sample and computed in float32, as for the
logit losses.
"""

import keras
from keras import ops

from kd_keras.hyperparameters import (
    Hyperparameter,
    check_non_negative,
    check_number,
)
from kd_keras.losses.logits import _PACKAGE, DistillationLoss, _as_float32

# Smallest norm divided by, as in `torch.nn.functional.normalize`: an all-zero
# vector (a dead ReLU map, two equal embeddings) normalises to zero, not NaN.
_NORM_EPSILON = 1e-12


def _per_sample_mean(values):
    """Mean over every axis but the batch axis."""
    return ops.mean(values, axis=tuple(range(1, len(values.shape))))


def _l2_normalize(x, axis=-1):
    """`x / max(||x||, 1e-12)` along `axis`, with a finite gradient at 0."""
    squared_norm = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x / ops.sqrt(ops.maximum(squared_norm, _NORM_EPSILON**2))


def _smooth_l1(x):
    """Huber loss with `delta=1` (PyTorch's `smooth_l1_loss`), elementwise."""
    magnitude = ops.abs(x)
    return ops.where(magnitude < 1.0, 0.5 * ops.square(x), magnitude - 0.5)


def _flatten(features):
    return ops.reshape(features, (ops.shape(features)[0], -1))


def _describe(side, layer):
    if layer is None:
        return f"the {side}'s output"
    return f"{side} layer {layer!r}"


def _shape(shape):
    return (None, *tuple(shape))


def _differ(a, b):
    return a is not None and b is not None and a != b


def _shapes_differ(a, b):
    """Whether two shapes differ on an axis where both are known."""
    return len(a) != len(b) or any(map(_differ, a, b))


def _shapes(teacher_shape, student_shape, teacher, student):
    return (
        f"{teacher} has features of shape {_shape(teacher_shape)} and "
        f"{student} of shape {_shape(student_shape)}"
    )


def _check_spatial(method, teacher_shape, student_shape, teacher, student):
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
    if _shapes_differ(teacher_shape[:-1], student_shape[:-1]):
        raise ValueError(
            f"{method} compares features position by position, but {shapes}: "
            "their spatial sizes differ. Pick a teacher and a student layer "
            "with the same height and width, e.g. the ends of stages after "
            "the same number of downsamplings."
        )


def _check_layer(name, value):
    if value is not None and not isinstance(value, str):
        raise TypeError(
            f"{name} must be a layer name (str) or None. "
            f"Received: {name}={value!r}"
        )
    return value


class _FeatureLoss(DistillationLoss):
    """A `DistillationLoss` reading the outputs of two named layers."""

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

    def _check_spatial(self, teacher_shape, student_shape):
        _check_spatial(
            type(self).__name__, teacher_shape, student_shape, *self._describe()
        )

    def get_config(self):
        return {
            **super().get_config(),
            "teacher_layer": self.teacher_layer,
            "student_layer": self.student_layer,
        }


def fitnet_hint(teacher_features, student_features):
    """FitNets hint loss: mean squared error between features, per sample.

    `student_features` are the student's features already mapped to the
    teacher's shape (by the regressor of the paper, `FitNet`'s adapter).

    Args:
        teacher_features: Teacher features, shape `(batch, ...)`.
        student_features: Adapted student features, the same shape.

    Returns:
        The squared error averaged over all feature axes, one value per
        sample.

    Formula:

    ```python
    loss = mean(square(student_features - teacher_features))  # per sample
    ```

    Example:

    >>> loss = kd_keras.losses.fitnet_hint([[1.0, 2.0]], [[0.0, 0.0]])
    >>> float(loss[0])
    2.5

    References:
        - [Romero et al., 2015](https://arxiv.org/abs/1412.6550)
    """
    t, s = _as_float32(teacher_features, student_features)
    if _shapes_differ(t.shape[1:], s.shape[1:]):
        raise ValueError(
            "fitnet_hint compares features of the same shape. Received: "
            f"teacher_features.shape={t.shape}, "
            f"student_features.shape={s.shape}"
        )
    return _per_sample_mean(ops.square(s - t))


def _check_adapter(adapter):
    if adapter is True or adapter is False or adapter == "auto":
        return adapter
    raise ValueError(
        f"adapter must be 'auto', True or False. Received: adapter={adapter!r}"
    )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FitNet(_FeatureLoss):
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
        needed = _differ(channels, student_shape[-1])
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
                f"teacher_shape={_shape(teacher_shape)}"
            )
        name = f"{self.name}_adapter"
        if len(teacher_shape) == 3:
            layer = keras.layers.Conv2D(channels, 1, name=name)
        else:
            layer = keras.layers.Dense(channels, name=name)
        layer.build(_shape(student_shape))
        return layer

    def call(self, y_true, y_pred):
        y_true, y_pred = _as_float32(y_true, y_pred)
        if _shapes_differ(y_true.shape[1:], y_pred.shape[1:]):
            raise ValueError(
                "FitNet compares the teacher's features with the student's "
                "mapped to their shape by the adapter, but "
                f"{self._shapes(y_true.shape[1:], y_pred.shape[1:])}. "
                "kd_keras.Distiller applies the adapter of make_adapter(); "
                "called directly, the loss needs the adapted features."
            )
        return fitnet_hint(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "adapter": self.adapter}


def attention_map(features, p=2.0):
    """Spatial attention map of image features, L2-normalised per sample.

    Args:
        features: Features of shape `(batch, height, width, channels)`.
        p: Exponent applied to the absolute activations, `>= 1`. Defaults
            to `2.0`.

    Returns:
        `mean(|features|**p, axis=-1)` flattened to
        `(batch, height * width)` and divided by its L2 norm (by `1e-12`
        where the map is all zeros, leaving it zero).

    Formula:

    ```python
    a = flatten(mean(abs(features)**p, axis=-1))   # (batch, h * w)
    map = a / max(norm(a, axis=-1), 1e-12)
    ```

    Example:

    >>> features = np.array([3.0, 4.0]).reshape(1, 1, 2, 1)
    >>> a = kd_keras.losses.attention_map(features, p=1.0)
    >>> [round(float(v), 4) for v in a[0]]  # (3, 4) / 5
    [0.6, 0.8]

    References:
        - [Zagoruyko & Komodakis, 2017](https://arxiv.org/abs/1612.03928)
    """
    features = ops.cast(features, "float32")
    if len(features.shape) != 4:
        raise ValueError(
            "attention_map needs features of shape (batch, height, width, "
            f"channels). Received: features.shape={features.shape}"
        )
    energy = ops.mean(ops.power(ops.abs(features), p), axis=-1)
    return _l2_normalize(_flatten(energy))


def _check_p(p):
    p = check_number("p", p)
    if not p >= 1:
        raise ValueError(f"p must be >= 1. Received: p={p}")
    return p


def attention_transfer(teacher_features, student_features, p=2.0):
    """Attention transfer loss, per sample, as in the authors' code.

    Args:
        teacher_features: Teacher features `(batch, height, width, c_t)`.
        student_features: Student features `(batch, height, width, c_s)`:
            the same spatial size, any number of channels.
        p: Exponent of the attention maps, `>= 1`. Defaults to `2.0`.

    Returns:
        The squared difference of the normalised attention maps, averaged
        over the `height * width` positions, one value per sample.

    Formula:

    ```python
    diff = attention_map(student_features, p) - attention_map(
        teacher_features, p)
    loss = mean(square(diff), axis=-1)
    ```

    Example:

    >>> teacher = np.array([3.0, 4.0]).reshape(1, 1, 2, 1)
    >>> student = np.array([4.0, 3.0]).reshape(1, 1, 2, 1)
    >>> # maps (0.6, 0.8) and (0.8, 0.6): mean(0.2**2, 0.2**2)
    >>> loss = kd_keras.losses.attention_transfer(teacher, student, p=1.0)
    >>> round(float(loss[0]), 4)
    0.04

    References:
        - [Zagoruyko & Komodakis, 2017](https://arxiv.org/abs/1612.03928)
    """
    p = _check_p(p)
    teacher, student = _as_float32(teacher_features, student_features)
    _check_spatial(
        "attention_transfer",
        teacher.shape[1:],
        student.shape[1:],
        "teacher_features",
        "student_features",
    )
    return ops.mean(
        ops.square(attention_map(student, p) - attention_map(teacher, p)),
        axis=-1,
    )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AttentionTransfer(_FeatureLoss):
    """Attention transfer: the student matches the teacher's attention maps.

    The attention map of image features is the mean over channels of the
    absolute activations raised to the power `p`, a map of where the
    network "looks". Both maps are flattened and L2-normalised, so only
    their shape is compared: the layers may have different numbers of
    channels and no adapter is needed, but they must have the same height
    and width.

    Normalisation: this is the authors' code, `(at(x) - at(y)).pow(2)
    .mean()`: the squared Euclidean distance of the normalised maps divided
    by the number of positions `height * width`, so with the default
    reduction it is the mean over the batch and the positions, as in their
    code. The paper writes `beta / 2 * || Q_s / ||Q_s|| - Q_t / ||Q_t|| ||`
    with the norm not squared, and sets `beta = 1000` divided by the number
    of positions and the batch size; the authors' code multiplies the loss
    above by `beta = 1000` (their README), not `beta / 2`. This loss has no
    `beta`: weigh it against the other terms of the objective. The paper
    sums `|x|**p` over channels where the code averages; the normalisation
    cancels the difference. The code squares the activations (`p=2`);
    other `p` use `|x|**p` as in the paper.

    Formula:

    ```python
    def at(x):
        q = reshape(mean(abs(x) ** p, axis=-1), (batch, -1))
        return q / max(norm(q, axis=-1), 1e-12)
    loss = mean(square(at(student) - at(teacher)), axis=-1)
    ```

    Args:
        teacher_layer: Name of the teacher layer, or `None` for the
            teacher's output.
        student_layer: Name of the student layer, or `None` for the
            student's output.
        p: Exponent of the attention maps, `>= 1` (`p < 1` has an infinite
            gradient at zero activations). Defaults to `2.0`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"attention_transfer"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.AttentionTransfer("block2", "block2", p=1)
    >>> teacher = [[[[3.0], [4.0]]]]  # 1x2 positions: map [0.6, 0.8]
    >>> student = [[[[4.0], [3.0]]]]  # map [0.8, 0.6]
    >>> round(float(loss(teacher, student)), 6)  # (0.2**2 + 0.2**2) / 2
    0.04

    References:
        - [Zagoruyko & Komodakis, 2017](https://arxiv.org/abs/1612.03928)
    """

    def __init__(
        self,
        teacher_layer,
        student_layer,
        p=2.0,
        reduction="sum_over_batch_size",
        name="attention_transfer",
        dtype=None,
    ):
        super().__init__(teacher_layer, student_layer, reduction, name, dtype)
        self.p = _check_p(p)

    def make_adapter(self, teacher_shape, student_shape):
        """Checks that the features can be compared; returns `None`.

        Raises:
            ValueError: The features are not 4-D or differ in spatial size.
        """
        self._check_shapes(teacher_shape, student_shape)
        return None

    def _check_shapes(self, teacher_shape, student_shape):
        if len(teacher_shape) != 3 or len(student_shape) != 3:
            raise ValueError(
                "AttentionTransfer needs image features of shape (batch, "
                "height, width, channels), but "
                f"{self._shapes(teacher_shape, student_shape)}."
            )
        self._check_spatial(teacher_shape, student_shape)

    def call(self, y_true, y_pred):
        y_true, y_pred = _as_float32(y_true, y_pred)
        self._check_shapes(y_true.shape[1:], y_pred.shape[1:])
        return attention_transfer(y_true, y_pred, self.p)

    def get_config(self):
        return {**super().get_config(), "p": self.p}


def _pairwise_distances(embeddings):
    """Euclidean distances `(n, n)`, zero on the diagonal.

    Squared distances from the Gram matrix, clamped at `1e-12` before the
    square root as in the reference: off the diagonal they are `>= 1e-6`
    even for equal embeddings, and the gradient stays finite.
    """
    squared_norms = ops.sum(ops.square(embeddings), axis=-1)
    squared = (
        squared_norms[:, None]
        + squared_norms[None, :]
        - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings))
    )
    distances = ops.sqrt(ops.maximum(squared, 1e-12))
    n = ops.shape(embeddings)[0]
    return distances * (1.0 - ops.eye(n, dtype=distances.dtype))


def _normalised_distances(embeddings):
    """Pairwise distances divided by the mean off-diagonal distance."""
    distances = _pairwise_distances(embeddings)
    n = ops.cast(ops.shape(embeddings)[0], distances.dtype)
    pairs = ops.maximum(n * (n - 1.0), 1.0)
    mean = ops.sum(distances) / pairs
    # A batch of one has no pair: its distances stay 0 instead of 0 / 0.
    return distances / ops.maximum(mean, _NORM_EPSILON)


def _angles(embeddings):
    """`cos[a, b, c]`: cosine of the angle at `e_a` between `e_b` and `e_c`.

    Zero when `e_b` or `e_c` equals `e_a`, as in the reference.
    """
    directions = _l2_normalize(embeddings[None, :, :] - embeddings[:, None, :])
    return ops.matmul(directions, ops.transpose(directions, (0, 2, 1)))


def rkd_distance(teacher_features, student_features):
    """RKD distance term, spread over the samples of the batch.

    Args:
        teacher_features: Teacher features `(batch, ...)`, flattened to
            embeddings.
        student_features: Student features `(batch, ...)`, any size.

    Returns:
        Per sample `i`, `mean_j smooth_l1(d_s[i, j] - d_t[i, j])`, with `d`
        the pairwise distances divided by their mean off the diagonal; the
        mean over the batch is the reference's value.

    Formula:

    ```python
    d[i, j] = norm(e[i] - e[j]) / mean_{k != l}(norm(e[k] - e[l]))
    loss_i = mean_j(smooth_l1(d_s[i, j] - d_t[i, j]))
    ```

    Example:

    >>> # Relations ignore scale and position: a scaled, shifted copy of
    >>> # the teacher's embeddings costs nothing.
    >>> teacher = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> loss = kd_keras.losses.rkd_distance(teacher, 3.0 * teacher + 1.0)
    >>> [round(float(v), 4) for v in loss]
    [0.0, 0.0, 0.0]

    References:
        - [Park et al., 2019](https://arxiv.org/abs/1904.05068)
    """
    t, s = _as_float32(teacher_features, student_features)
    return ops.mean(
        _smooth_l1(
            _normalised_distances(_flatten(s))
            - _normalised_distances(_flatten(t))
        ),
        axis=-1,
    )


def rkd_angle(teacher_features, student_features):
    """RKD angle term, spread over the samples of the batch.

    Args:
        teacher_features: Teacher features `(batch, ...)`, flattened to
            embeddings.
        student_features: Student features `(batch, ...)`, any size.

    Returns:
        Per sample `a`, `mean_{b, c} smooth_l1(cos_s[a, b, c] -
        cos_t[a, b, c])`, over the angles with their vertex at sample `a`;
        the mean over the batch is the reference's value.

    Formula:

    ```python
    u = (e[b] - e[a]) / norm(e[b] - e[a])
    v = (e[c] - e[a]) / norm(e[c] - e[a])
    cos[a, b, c] = dot(u, v)
    loss_a = mean_{b, c}(smooth_l1(cos_s[a, b, c] - cos_t[a, b, c]))
    ```

    Example:

    >>> # Relations ignore scale and position: a scaled, shifted copy of
    >>> # the teacher's embeddings costs nothing.
    >>> teacher = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> loss = kd_keras.losses.rkd_angle(teacher, 3.0 * teacher + 1.0)
    >>> [round(float(v), 4) for v in loss]
    [0.0, 0.0, 0.0]

    References:
        - [Park et al., 2019](https://arxiv.org/abs/1904.05068)
    """
    t, s = _as_float32(teacher_features, student_features)
    return ops.mean(
        _smooth_l1(_angles(_flatten(s)) - _angles(_flatten(t))), axis=(1, 2)
    )


def rkd(
    teacher_features,
    student_features,
    distance_weight=25.0,
    angle_weight=50.0,
):
    """Relational knowledge distillation loss, spread over the samples.

    Args:
        teacher_features: Teacher features `(batch, ...)`, flattened to
            embeddings.
        student_features: Student features `(batch, ...)`, any size.
        distance_weight: Weight of `rkd_distance`. Defaults to `25.0`.
        angle_weight: Weight of `rkd_angle`. Defaults to `50.0`.

    Returns:
        `distance_weight * rkd_distance + angle_weight * rkd_angle`, one
        value per sample whose mean over the batch is the reference's value.

    Formula:

    ```python
    loss = (distance_weight * rkd_distance(t, s)
            + angle_weight * rkd_angle(t, s))
    ```

    Example:

    >>> # Relations ignore scale and position: a scaled, shifted copy of
    >>> # the teacher's embeddings costs nothing.
    >>> teacher = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> loss = kd_keras.losses.rkd(teacher, 3.0 * teacher + 1.0)
    >>> [round(float(v), 4) for v in loss]
    [0.0, 0.0, 0.0]

    References:
        - [Park et al., 2019](https://arxiv.org/abs/1904.05068)
    """
    return distance_weight * rkd_distance(
        teacher_features, student_features
    ) + angle_weight * rkd_angle(teacher_features, student_features)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RKD(_FeatureLoss):
    """Relational knowledge distillation: the geometry of the batch.

    The student keeps the teacher's relations between the samples of a
    batch. Features are flattened to one embedding per sample. The distance
    term matches the pairwise Euclidean distances between the samples of the
    batch, each side divided by its mean distance over the pairs of
    distinct samples, so only relative distances count and the embeddings
    may differ in size and scale. The angle term matches the cosines of the
    angles formed by every triplet of samples. Both use the smooth L1
    (Huber, `delta=1`) loss. No adapter is needed.

    The terms relate samples, while Keras losses give one value per sample.
    Sample `i` receives the mean over `j` of the distance losses of the
    pairs `(i, j)` and the mean over `(j, k)` of the angle losses of the
    angles with their vertex at `i`; the diagonal (`j == i`, zero on both
    sides) counts as in the reference. The mean over the batch, the default
    `"sum_over_batch_size"` reduction, is then exactly the reference value,
    whose `smooth_l1_loss(reduction="mean")` averages over all `n**2`
    entries of the distance matrix and `n**3` of the angle tensor.
    `sample_weight[i]` weighs the angles with their vertex at sample `i`
    and each pair `(i, j)` with `(w_i + w_j) / 2`; the normalising mean
    distance is the whole batch's whatever the weights. Under a
    distribution strategy, relations are taken within each replica's batch.

    A batch of one sample has no relations: its loss is zero. The
    `Distiller` passes the teacher's features as constants, as the
    reference's `torch.no_grad()`; the value is the same either way. The
    angle term holds `n**2 * d` differences and `n**3` cosines for `n`
    samples of `d` features: give RKD pooled embeddings (e.g. the
    penultimate layer), not large feature maps.

    Formula:

    ```python
    def normalised_distances(e):  # e: (n, d)
        d = norm(e[:, None] - e[None, :], axis=-1)
        return d / (sum(d) / (n * (n - 1)))
    def cosines(e):  # (n, n, n)
        u = l2_normalize(e[None, :] - e[:, None], axis=-1)
        return einsum("abk,ack->abc", u, u)
    distance = mean(smooth_l1(normalised_distances(s)
                              - normalised_distances(t)), axis=1)
    angle = mean(smooth_l1(cosines(s) - cosines(t)), axis=(1, 2))
    loss = distance_weight * distance + angle_weight * angle
    ```

    Args:
        teacher_layer: Name of the teacher layer, or `None` for the
            teacher's output. Defaults to `None`.
        student_layer: Name of the student layer, or `None` for the
            student's output. Defaults to `None`.
        distance_weight: Weight `>= 0` of the distance term. Defaults to
            `25.0`, as RepDistiller's `RKDLoss` and the authors' CIFAR
            classification script (their metric-learning runs use `1.0`).
        angle_weight: Weight `>= 0` of the angle term. Defaults to `50.0`
            (`2.0` in the authors' metric-learning runs).
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"rkd"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.RKD(distance_weight=1.0, angle_weight=0.0)
    >>> teacher = [[0.0], [1.0], [3.0]]  # distances 1, 3, 2; mean 2
    >>> student = [[0.0], [1.0], [2.0]]  # distances 1, 2, 1; mean 4/3
    >>> round(float(loss(teacher, student)), 6)  # 4 * (0.5 * 0.25**2) / 9
    0.013889

    References:
        - [Park et al., 2019](https://arxiv.org/abs/1904.05068)
    """

    distance_weight = Hyperparameter(check_non_negative)
    angle_weight = Hyperparameter(check_non_negative)

    def __init__(
        self,
        teacher_layer=None,
        student_layer=None,
        distance_weight=25.0,
        angle_weight=50.0,
        reduction="sum_over_batch_size",
        name="rkd",
        dtype=None,
    ):
        super().__init__(teacher_layer, student_layer, reduction, name, dtype)
        self.distance_weight = distance_weight
        self.angle_weight = angle_weight

    def call(self, y_true, y_pred):
        return rkd(
            y_true,
            y_pred,
            distance_weight=self._distance_weight,
            angle_weight=self._angle_weight,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "distance_weight": self.distance_weight,
            "angle_weight": self.angle_weight,
        }
