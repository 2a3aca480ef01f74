"""The combined hard + soft objective as one plain function."""

from keras import ops

from kd_keras.hyperparameters import check_temperature, check_weight
from kd_keras.labels import is_one_hot
from kd_keras.losses.logits import kd


def hard_crossentropy(y_true, y_pred):
    """Cross-entropy of logits `y_pred` against integer or one-hot labels."""
    y_pred = ops.cast(y_pred, "float32")
    if is_one_hot(y_true.shape, y_pred.shape):
        return ops.categorical_crossentropy(
            ops.cast(y_true, "float32"), y_pred, from_logits=True
        )
    return ops.sparse_categorical_crossentropy(
        ops.reshape(ops.cast(y_true, "int32"), ops.shape(y_pred)[:-1]),
        y_pred,
        from_logits=True,
    )


def distillation_loss(
    y_true, y_pred, teacher_pred, lambda_param=0.5, temperature=1.0
):
    """The classic combined objective `L = λ·L_soft + (1 − λ)·L_hard`.

    `L_soft` is Hinton KD (`kd_keras.losses.KD`), `L_hard` the
    cross-entropy of the student's logits against the labels.

    Mind the two weights: `lambda_param` weighs the *soft* term, while
    `Distiller(alpha=...)` weighs the *hard* term, as in keras.io and
    `keras.distillation`. `lambda_param=λ` is `Distiller(alpha=1 - λ)`.

    Formula:

    ```python
    L_soft = T**2 * KL(softmax(teacher_pred / T) || softmax(y_pred / T))
    L_hard = crossentropy(y_true, softmax(y_pred))
    loss = lambda_param * L_soft + (1 - lambda_param) * L_hard
    ```

    Args:
        y_true: Integer labels `(batch,)` or one-hot labels
            `(batch, classes)`.
        y_pred: Student logits `(batch, classes)`.
        teacher_pred: Teacher logits `(batch, classes)`.
        lambda_param: Weight of the soft term, in [0, 1]. Defaults to `0.5`.
        temperature: Softening temperature `T > 0`. Defaults to `1.0`.

    Returns:
        The loss per sample, shape `(batch,)`.

    Example:

    >>> loss = kd_keras.distillation_loss([0], [[0.0, 0.0]], [[0.0, 0.0]])
    >>> round(float(loss[0]), 4)  # 0.5 * 0 + 0.5 * log(2)
    0.3466

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
    """
    lambda_param = check_weight("lambda_param", lambda_param)
    temperature = check_temperature(temperature)
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    soft = kd(teacher_pred, y_pred, temperature=temperature)
    hard = hard_crossentropy(y_true, y_pred)
    return lambda_param * soft + (1.0 - lambda_param) * hard
