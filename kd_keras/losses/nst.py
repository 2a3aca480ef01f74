"""Neuron selectivity transfer: the distribution of the channels' maps."""

import keras
from keras import ops

from kd_keras.losses.base import (
    PACKAGE,
    FeatureLoss,
    as_float32,
    check_image_features,
    l2_normalize,
)


def _size(x, axis):
    """The size of `x` along `axis`: an int if known, else a tensor."""
    size = x.shape[axis]
    return ops.shape(x)[axis] if size is None else size


def _pooling_matrix(size, target):
    """`(target, size)` weights of PyTorch's adaptive average pooling.

    Output `i` averages the inputs `floor(i * size / target)` to
    `ceil((i + 1) * size / target) - 1`, as `adaptive_avg_pool2d` does.
    """
    bins = ops.arange(target)
    start = (bins * size) // target
    end = ((bins + 1) * size + target - 1) // target
    inputs = ops.expand_dims(ops.arange(size), 0)
    inside = ops.logical_and(
        inputs >= ops.expand_dims(start, 1), inputs < ops.expand_dims(end, 1)
    )
    counts = ops.cast(ops.expand_dims(end - start, 1), "float32")
    return ops.cast(inside, "float32") / counts


def _adaptive_average_pool(x, height, width):
    """`x` `(batch, h, w, c)` average-pooled to `(batch, height, width, c)`.

    PyTorch's `adaptive_avg_pool2d`, channels last; `x` itself when its
    size is already known to be the target.
    """
    in_height, in_width = _size(x, 1), _size(x, 2)
    sizes = (in_height, in_width, height, width)
    if all(isinstance(size, int) for size in sizes) and (
        (in_height, in_width) == (height, width)
    ):
        return x
    return ops.einsum(
        "ih,nhwc,jw->nijc",
        _pooling_matrix(in_height, height),
        x,
        _pooling_matrix(in_width, width),
    )


def _common_size(teacher, student):
    """Both features pooled to the smaller height and the smaller width."""
    sizes = []
    for axis in (1, 2):
        t, s = _size(teacher, axis), _size(student, axis)
        known = isinstance(t, int) and isinstance(s, int)
        sizes.append(min(t, s) if known else ops.minimum(t, s))
    return (
        _adaptive_average_pool(teacher, *sizes),
        _adaptive_average_pool(student, *sizes),
    )


def _selectivities(features):
    """`(batch, h, w, c)` as `(batch, h * w, c)`, each channel's map of
    unit L2 norm (an all-zero map stays zero)."""
    channels = _size(features, 3)
    maps = ops.reshape(features, (ops.shape(features)[0], -1, channels))
    return l2_normalize(maps, axis=1)


def _mean_kernel(a, b):
    """Mean over the channel pairs of the kernel `(a_i . b_j)**2`."""
    gram = ops.matmul(ops.transpose(a, (0, 2, 1)), b)
    return ops.mean(ops.square(gram), axis=(1, 2))


def nst(teacher_features, student_features):
    """Neuron selectivity transfer loss, per sample, as in RepDistiller.

    The functional form of `NST`; see `NST` for the formula and references.

    Args:
        teacher_features: Teacher features `(batch, h_t, w_t, c_t)`.
        student_features: Student features `(batch, h_s, w_s, c_s)`: any
            number of channels; along each spatial axis the larger of the
            two is first average-pooled to the smaller.

    Returns:
        One value per sample: the squared MMD, with the polynomial kernel
        `(x . y)**2`, between the teacher's and the student's normalised
        channel maps.

    Example:

    >>> teacher = np.array([3.0, 4.0]).reshape(1, 1, 2, 1)  # (0.6, 0.8)
    >>> student = np.array([4.0, 3.0]).reshape(1, 1, 2, 1)  # (0.8, 0.6)
    >>> # 1 + 1 - 2 * (0.6 * 0.8 + 0.8 * 0.6)**2
    >>> round(float(kd_keras.losses.nst(teacher, student)[0]), 4)
    0.1568
    """
    teacher, student = as_float32(teacher_features, student_features)
    check_image_features(
        "nst",
        teacher.shape[1:],
        student.shape[1:],
        "teacher_features",
        "student_features",
    )
    teacher, student = _common_size(teacher, student)
    f_t, f_s = _selectivities(teacher), _selectivities(student)
    return (
        _mean_kernel(f_t, f_t)
        + _mean_kernel(f_s, f_s)
        - 2.0 * _mean_kernel(f_s, f_t)
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class NST(FeatureLoss):
    """Neuron selectivity transfer: MMD between the layers' channel maps.

    Each channel's activation map over the `height * width` positions, L2
    normalised, is one sample of the layer's "neuron selectivities"; NST
    makes the student's set of maps match the teacher's in distribution:
    the squared maximum mean discrepancy (MMD) between the two sets, with
    the polynomial kernel `k(x, y) = (x . y)**2`. Only the maps' shapes
    and their distribution count, not the channels' order, number or
    scale, so the layers may have different numbers of channels and no
    adapter is needed.

    This is the released code of RepDistiller (`distiller_zoo/NST.py`,
    `full_loss=True`): the maps are flattened to `(channels, h * w)` and
    normalised along the positions (`F.normalize`, `1e-12`), and each
    kernel term is a mean over the channel pairs, so with the default
    reduction the loss is its batch mean. Keras features are channels last:
    they are read as the code's `(batch, channels, h * w)`, the positions
    in the same order. When the spatial sizes differ, the code
    average-pools the larger map to the smaller (`adaptive_avg_pool2d` to
    `(h, h)`, comparing heights only: its maps are square); here each axis
    is pooled to the smaller of the two sizes, the same for square maps.
    The code detaches the teacher-teacher term, a constant for the student;
    here it is not detached, which changes nothing while the teacher is not
    trained. RepDistiller sums NST over the outputs of the residual stages
    (`feat[1:-1]`: neither the stem nor the pooled features) and weighs the
    sum by `-b 50` in `scripts/run_cifar_distill.sh` (with `-a 0`, no KD
    term; `train_student.py` has no default): give one `NST` per pair of
    layers and weigh them against the other terms of the objective. The
    paper also tries linear and Gaussian kernels; the code has the
    polynomial one only.

    Formula:

    ```python
    def maps(x):  # (batch, h, w, c) -> (batch, h * w, c)
        f = reshape(x, (batch, -1, channels))
        return f / max(norm(f, axis=1, keepdims=True), 1e-12)
    def k(a, b):  # mean over channel pairs (i, j) of (a_i . b_j)**2
        return mean(square(transpose(a) @ b), axis=(1, 2))
    # first, along each spatial axis the larger features are adaptively
    # average-pooled to the smaller size
    f_t, f_s = maps(teacher), maps(student)
    loss = k(f_t, f_t) + k(f_s, f_s) - 2 * k(f_s, f_t)
    ```

    Args:
        teacher_layer: Name (or path into nested models) of the teacher
            layer, whose output is a feature map `(batch, h, w, c)`.
        student_layer: Name (or path) of the student layer, a feature map
            `(batch, h', w', c')`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"nst"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.NST("block2", "block2")
    >>> teacher = [[[[3.0], [4.0]]]]  # 1x2 positions: map (0.6, 0.8)
    >>> student = [[[[4.0], [3.0]]]]  # map (0.8, 0.6)
    >>> round(float(loss(teacher, student)), 4)  # 1 + 1 - 2 * 0.96**2
    0.1568

    References:
        - [Huang & Wang, 2017](https://arxiv.org/abs/1707.01219)
          (code: https://github.com/HobbitLong/RepDistiller,
          `distiller_zoo/NST.py`)
    """

    def __init__(
        self,
        teacher_layer,
        student_layer,
        reduction="sum_over_batch_size",
        name="nst",
        dtype=None,
    ):
        super().__init__(teacher_layer, student_layer, reduction, name, dtype)

    def make_adapter(self, teacher_shape, student_shape):
        """Checks that the features can be compared; returns `None`.

        Raises:
            ValueError: The features are not image features, 4-D.
        """
        self._check_shapes(teacher_shape, student_shape)
        return None

    def _check_shapes(self, teacher_shape, student_shape):
        self._check_image_features(teacher_shape, student_shape)

    def call(self, y_true, y_pred):
        y_true, y_pred = as_float32(y_true, y_pred)
        self._check_shapes(y_true.shape[1:], y_pred.shape[1:])
        return nst(y_true, y_pred)
