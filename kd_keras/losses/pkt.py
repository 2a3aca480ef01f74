"""Probabilistic knowledge transfer: distributions of the batch's cosines.

The formula is checked against the released code: `cosine_similarity_loss`
in `nn/pkt.py` of the authors' passalis/probabilistic_kt (commit
a58fd1b0c62491f55a78189daf835e3558f96176), copied as
`PKT.cosine_similarity_loss` in `distiller_zoo/PKT.py` of
HobbitLong/RepDistiller (commit b84f547c5db6a35318d4671d7d5c4de74c822403)
and as `pkt_loss` in `mdistiller/distillers/PKT.py` of
megvii-research/mdistiller (commit a08d46f10d6102bd6e3f258ca5ac880b020ea259).
"""

import keras
from keras import ops

from kd_keras.hyperparameters import check_positive
from kd_keras.losses.base import PACKAGE, FeatureLoss, as_float32, flatten

# The reference's `eps`: added to the norms and inside the logarithm.
DEFAULT_EPS = 1e-7


def _unit(embeddings, eps):
    """`x / (||x|| + eps)` per row, as the reference, with a finite gradient.

    At an all-zero row the square root's gradient is infinite, and the
    reference's gradient NaN (infinity times 0); the norm's part is taken
    as 0 there, leaving the function's derivative, `1 / eps`. The value is
    unchanged.
    """
    squared = ops.sum(ops.square(embeddings), axis=-1, keepdims=True)
    positive = squared > 0
    norm = ops.where(positive, ops.sqrt(ops.where(positive, squared, 1.0)), 0.0)
    return embeddings / (norm + eps)


def _conditional_probabilities(features, eps):
    """`P[i, j]`: the cosine kernel `(cos + 1) / 2`, rows summing to 1."""
    unit = _unit(flatten(features), eps)
    kernel = (ops.matmul(unit, ops.transpose(unit)) + 1.0) / 2.0
    return kernel / ops.sum(kernel, axis=-1, keepdims=True)


def pkt(teacher_features, student_features, eps=DEFAULT_EPS):
    """Probabilistic knowledge transfer loss, spread over the samples.

    The functional form of `PKT`; see `PKT` for the formula and references.

    Args:
        teacher_features: Teacher features `(batch, ...)`, flattened per
            sample.
        student_features: Student features `(batch, ...)`, any size.
        eps: Added to the norms and to both probabilities in the
            logarithm, `> 0`. Defaults to `1e-7`.

    Returns:
        One value per sample `i`, over the pairs `(i, j)`; the mean over the
        batch is the reference's value.

    Example:

    >>> # Cosines ignore each sample's scale.
    >>> teacher = np.array([[3.0, 4.0], [0.0, 4.0], [-4.0, 0.0]])
    >>> loss = kd_keras.losses.pkt(teacher, teacher * [[2.0], [0.5], [3.0]])
    >>> [round(float(v), 6) for v in loss]
    [0.0, 0.0, 0.0]
    """
    eps = check_positive("eps", eps)
    t, s = as_float32(teacher_features, student_features)
    p_t = _conditional_probabilities(t, eps)
    p_s = _conditional_probabilities(s, eps)
    return ops.mean(p_t * ops.log((p_t + eps) / (p_s + eps)), axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class PKT(FeatureLoss):
    """Probabilistic knowledge transfer: the teacher's neighbourhoods.

    Each side's features are flattened to one embedding per sample. For
    every sample `i` of the batch, the cosine kernel `(cos(x_i, x_j) + 1) /
    2`, in `[0, 1]`, normalised over `j` gives a probability distribution
    `P[i, :]` of its neighbours; the student's distributions are brought to
    the teacher's by the Kullback-Leibler divergence `KL(P_t[i] || P_s[i])`.
    Only cosines between samples are compared, so the embeddings may differ
    in size and each sample's scale is ignored; no adapter is needed. Both
    toolkits apply it to the pooled penultimate features (RepDistiller's
    `feat[-1]`, mdistiller's `pooled_feat`) and weigh it by `30000`.

    Paper and code: this is the authors' code (`cosine_similarity_loss`).
    The paper writes the conditional probabilities as in SNE, leaving out
    the sample itself (`k != j` in the normalising sum) and summing the
    divergence over the pairs `j != i`. The code keeps the diagonal
    (`cos(x_i, x_i) = 1`, a kernel of 1) in the normalisation and in the
    divergence, adds `eps` to both probabilities inside the logarithm, and
    takes the mean over all `batch**2` entries instead of the sum: the sum
    of the rows' divergences divided by `batch**2`. Each embedding is
    divided by its norm plus `eps`. The code then sets NaN entries of the
    normalised embeddings to 0, which only non-finite features produce;
    here they propagate, so that the non-finite values are seen.

    The loss relates samples, while Keras losses give one value per sample.
    Sample `i` receives the mean over `j` of the terms of row `i`, its
    divergence divided by `batch`; the mean over the batch, the default
    `"sum_over_batch_size"` reduction, is then exactly the reference value.
    `sample_weight[i]` weighs row `i`; each distribution is normalised over
    the whole batch whatever the weights. Under a distribution strategy,
    relations are taken within each replica's batch.

    A batch of one sample has the distribution `[1]` on both sides: its loss
    is zero. An all-zero embedding (a dead ReLU layer) has cosine 0 with
    every sample and a finite gradient, where the reference's is NaN. The
    `Distiller` passes the teacher's features as constants, as the
    reference's `torch.no_grad()`.

    Formula:

    ```python
    def probabilities(f):  # f: (n, ...)
        f = reshape(f, (n, -1))
        f = f / (norm(f, axis=1, keepdims=True) + eps)
        k = (f @ f.T + 1) / 2
        return k / sum(k, axis=1, keepdims=True)
    p_t, p_s = probabilities(t), probabilities(s)
    loss = mean(p_t * log((p_t + eps) / (p_s + eps)), axis=1)
    ```

    Args:
        teacher_layer: Name of the teacher layer, or `None` for the
            teacher's output. Defaults to `None`.
        student_layer: Name of the student layer, or `None` for the
            student's output. Defaults to `None`.
        eps: Added to the norms and to both probabilities in the
            logarithm, `> 0`, as in the reference. Defaults to `1e-7`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"pkt"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.PKT()
    >>> teacher = [[1.0, 0.0], [0.0, 1.0]]  # kernel [[1, 1/2], [1/2, 1]]
    >>> student = [[1.0, 0.0], [2.0, 0.0]]  # kernel [[1, 1], [1, 1]]
    >>> # Rows [2/3, 1/3] against [1/2, 1/2], twice, over 2 x 2 entries.
    >>> kl = 2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3)
    >>> round(float(loss(teacher, student)), 5), round(kl / 2, 5)
    (0.02832, 0.02832)

    References:
        - [Passalis & Tefas, 2018](https://arxiv.org/abs/1803.10837)
    """

    config_names = ("eps",)

    def __init__(
        self,
        teacher_layer=None,
        student_layer=None,
        eps=DEFAULT_EPS,
        reduction="sum_over_batch_size",
        name="pkt",
        dtype=None,
    ):
        super().__init__(teacher_layer, student_layer, reduction, name, dtype)
        self.eps = check_positive("eps", eps)

    def call(self, y_true, y_pred):
        return pkt(y_true, y_pred, eps=self.eps)
