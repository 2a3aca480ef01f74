"""Similarity-preserving KD: the batch's pairwise similarities of features.

The formula is checked against the released code: `similarity_loss` of
the `Similarity` module in `distiller_zoo/SP.py` of HobbitLong/RepDistiller
(commit b84f547c5db6a35318d4671d7d5c4de74c822403, "verified by original
author"), and `similarity_loss` in `mdistiller/distillers/SP.py` of
megvii-research/mdistiller (commit a08d46f10d6102bd6e3f258ca5ac880b020ea259),
the same code.
"""

import keras
from keras import ops

from kd_keras.losses.base import (
    PACKAGE,
    FeatureLoss,
    as_float32,
    flatten,
    l2_normalize,
)


def _similarities(features):
    """The Gram matrix `(n, n)` of the flattened features, rows normalised.

    `torch.nn.functional.normalize(G)` of the reference: each row divided
    by its L2 norm, at least `1e-12`, so an all-zero sample gives a zero
    row.
    """
    embeddings = flatten(features)
    gram = ops.matmul(embeddings, ops.transpose(embeddings))
    return l2_normalize(gram, axis=-1)


def sp(teacher_features, student_features):
    """Similarity-preserving loss, spread over the samples of the batch.

    The functional form of `SP`; see `SP` for the formula and references.

    Args:
        teacher_features: Teacher features `(batch, ...)`, flattened per
            sample.
        student_features: Student features `(batch, ...)`, any size.

    Returns:
        One value per sample `i`, over the pairs `(i, j)`; the mean over the
        batch is the reference's value.

    Example:

    >>> # Gram matrices ignore rotations and scale; the sizes may differ.
    >>> teacher = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> student = 3.0 * np.array([[0.0, 1, 0], [-2, 0, 0], [-1, 1, 0]])
    >>> loss = kd_keras.losses.sp(teacher, student)
    >>> [round(float(v), 4) for v in loss]
    [0.0, 0.0, 0.0]
    """
    t, s = as_float32(teacher_features, student_features)
    return ops.mean(ops.square(_similarities(t) - _similarities(s)), axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SP(FeatureLoss):
    """Similarity-preserving KD: the student keeps the teacher's similarities.

    Samples that activate the teacher similarly should activate the student
    similarly. Each side's features are flattened to one vector per sample
    and their Gram matrix `G = f @ f.T` (the `batch x batch` dot products)
    is normalised row by row to unit L2 norm; the loss is the squared
    Frobenius distance between the teacher's and the student's normalised
    matrices divided by `batch**2`. Only relations between samples are
    compared, so the layers may differ in shape, channels and scale, and no
    adapter is needed. The paper and the authors' code agree; the code
    (RepDistiller's `Similarity`, "verified by original author") is
    followed here. Both toolkits apply it to the output of the last
    convolutional stage, before pooling (RepDistiller's `feat[-2]`,
    mdistiller's `feats[-1]`), and weigh it by `3000` (the paper's
    `gamma`).

    The loss relates samples, while Keras losses give one value per sample.
    Sample `i` receives the mean over `j` of the squared differences in
    row `i` of the normalised matrices; the mean over the batch, the
    default `"sum_over_batch_size"` reduction, is then exactly the
    reference value, `sum(square(G_t - G_s)) / batch**2`.
    `sample_weight[i]` weighs row `i`; the rows are normalised over the
    whole batch whatever the weights. Under a distribution strategy,
    relations are taken within each replica's batch.

    A batch of one sample has the normalised matrix `[[1]]` on both sides:
    its loss is zero. An all-zero sample (a dead ReLU map) gives a zero row,
    and a finite gradient. The `Distiller` passes the teacher's features as
    constants, as the reference's `torch.no_grad()`.

    Formula:

    ```python
    def similarities(f):  # f: (n, ...)
        f = reshape(f, (n, -1))
        g = f @ f.T
        return g / maximum(norm(g, axis=1, keepdims=True), 1e-12)
    loss = mean(square(similarities(t) - similarities(s)), axis=1)
    ```

    Args:
        teacher_layer: Name of the teacher layer, or `None` for the
            teacher's output. Defaults to `None`.
        student_layer: Name of the student layer, or `None` for the
            student's output. Defaults to `None`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"sp"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.SP()
    >>> teacher = [[1.0, 0.0], [0.0, 1.0]]  # similarities [[1, 0], [0, 1]]
    >>> student = [[1.0, 0.0], [1.0, 0.0]]  # both rows [1, 1] / sqrt(2)
    >>> # Each row differs by (1 - b, -b), b = 1 / sqrt(2), squares summed
    >>> # 2 - 2 * b; the mean over 2 x 2 entries is 1 - b.
    >>> round(float(loss(teacher, student)), 6)
    0.292893

    References:
        - [Tung & Mori, 2019](https://arxiv.org/abs/1907.09682)
    """

    def __init__(
        self,
        teacher_layer=None,
        student_layer=None,
        reduction="sum_over_batch_size",
        name="sp",
        dtype=None,
    ):
        super().__init__(teacher_layer, student_layer, reduction, name, dtype)

    def call(self, y_true, y_pred):
        return sp(y_true, y_pred)
