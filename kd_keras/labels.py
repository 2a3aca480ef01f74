"""Labels: one-hot rows or class indices, labelled or not.

`is_one_hot` is the one rule telling one-hot rows from class indices.

Distillation can use inputs nobody labelled: the teacher's outputs are the
targets. A class index of `UNLABELLED` (-1) marks such a sample, so one
`fit` takes a few labelled samples and many unlabelled ones (Hinton et
al.'s transfer set): the hard-label loss of an unlabelled sample is
masked (weight 0), its distillation loss is kept. Only class indices can
carry the marker; one-hot rows and regression targets are always labels.
"""

from keras import ops

UNLABELLED = -1


def is_one_hot(labels_shape, outputs_shape):
    """Whether labels of `labels_shape` are rows as wide as the outputs.

    The one rule kd_keras uses: labels of the outputs' rank with more than
    one column are one-hot (or soft, or multi-hot) rows; otherwise a
    classifier's labels are class indices, `(batch,)` or `(batch, 1)`.

    Args:
        labels_shape: The labels' shape, with the batch axis.
        outputs_shape: The model outputs' shape, with the batch axis.
    """
    return len(labels_shape) == len(outputs_shape) and labels_shape[-1] != 1


def is_sparse(labels, outputs):
    """Whether `labels` are class indices for a classifier's `outputs`."""
    classes = outputs.shape[-1]
    return (
        classes is not None
        and classes > 1
        and not is_one_hot(labels.shape, outputs.shape)
    )


def split_unlabelled(labels, outputs):
    """`(labels, labelled)`: labels a loss can read, and which are known.

    Unlabelled class indices become class 0 (any valid index: a loss must
    not fail on them) and `labelled` is a float mask of the outputs' shape
    without the classes axis, 0 for them. Other labels (one-hot,
    regression targets, `None`) are returned as they are, with `labelled`
    `None`.

    Args:
        labels: The batch's labels.
        outputs: The student's outputs on the batch.
    """
    if labels is None or not is_sparse(labels, outputs):
        return labels, None
    labels = ops.convert_to_tensor(labels)
    known = ops.not_equal(labels, UNLABELLED)
    labelled = ops.cast(ops.reshape(known, ops.shape(outputs)[:-1]), "float32")
    return ops.where(known, labels, ops.zeros_like(labels)), labelled


def mask_unlabelled(labels, outputs, sample_weight):
    """`(labels, sample_weight)` with unlabelled samples weighted 0.

    See `split_unlabelled`; the weights of labelled samples are kept.
    """
    labels, labelled = split_unlabelled(labels, outputs)
    if labelled is None:
        return labels, sample_weight
    return labels, weigh_labelled(labelled, sample_weight)


def weigh_labelled(labelled, sample_weight):
    """The weights of `split_unlabelled`'s mask `labelled`: 0 where a
    sample is unlabelled, its `sample_weight` (or 1 if `None`) elsewhere."""
    if sample_weight is None:
        return labelled
    weight = ops.cast(sample_weight, "float32")
    # Weights of shape (batch, 1) against a mask of shape (batch,), or the
    # other way round: align the ranks, never broadcast to (batch, batch).
    while len(weight.shape) < len(labelled.shape):
        weight = ops.expand_dims(weight, -1)
    while len(labelled.shape) < len(weight.shape):
        labelled = ops.expand_dims(labelled, -1)
    return labelled * weight


def fill_unlabelled(labels, teacher_logits):
    """`labels` with each unlabelled sample given the teacher's top class.

    For distillation losses that read the labels (DKD splits the target
    class from the others): the teacher's prediction stands in for the
    missing label.
    """
    if labels is None or not is_sparse(labels, teacher_logits):
        return labels
    labels = ops.convert_to_tensor(labels)
    top = ops.reshape(
        ops.cast(ops.argmax(teacher_logits, axis=-1), labels.dtype),
        ops.shape(labels),
    )
    return ops.where(ops.equal(labels, UNLABELLED), top, labels)
