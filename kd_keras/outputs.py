"""Models' outputs: their activation, shape, logits and hard-label loss."""

import keras
from keras import ops

# log(p) of a probability output is a valid logit; the clip keeps a
# saturated softmax finite.
_MIN_PROBABILITY = 1e-7


def _output_layer(model):
    outputs = getattr(model, "outputs", None)
    if outputs and len(outputs) == 1:
        return outputs[0]._keras_history.operation
    return model.layers[-1] if model.layers else None


def output_activation(model):
    """`"softmax"`, `"sigmoid"` or `None`: the activation of `model`'s output.

    Recognises a `Softmax` layer and any layer whose `activation` is softmax
    or sigmoid (`Dense(..., activation="softmax")`, `Activation`), directly
    or at the end of a nested model.
    """
    layer = _output_layer(model)
    if isinstance(layer, keras.Model):
        return output_activation(layer)
    # A `Softmax` layer, or the `keras.ops.softmax`/`sigmoid` operations
    # (classes `Softmax`/`Sigmoid` in `keras.src.ops.nn`).
    operation = type(layer).__name__.lower()
    if operation in ("softmax", "sigmoid"):
        return operation
    name = getattr(getattr(layer, "activation", None), "__name__", None)
    return name if name in ("softmax", "sigmoid") else None


def to_logits(outputs, activation):
    """`outputs` as float32 logits.

    A softmax output becomes its log-probabilities (logits up to a constant
    per sample, which softmax ignores); a sigmoid output `p` becomes
    `log(p / (1 - p))`, the logit the sigmoid was applied to.
    """
    outputs = ops.cast(outputs, "float32")
    if activation == "softmax":
        return ops.log(ops.clip(outputs, _MIN_PROBABILITY, 1.0))
    if activation == "sigmoid":
        p = ops.clip(outputs, _MIN_PROBABILITY, 1.0 - _MIN_PROBABILITY)
        return ops.log(p) - ops.log1p(-p)
    return outputs


def default_label_loss(labels, outputs, activation):
    """The hard-label loss for `outputs` when none is given.

    Binary cross-entropy on the probabilities of a sigmoid output (binary
    or multi-label); mean squared error for other single-unit outputs;
    otherwise categorical cross-entropy for one-hot `labels` and sparse
    categorical cross-entropy for integer labels, from logits unless
    `activation` is `"softmax"`.

    Args:
        labels: The labels (their shape decides one-hot or integer).
        outputs: The model's outputs.
        activation: The output activation, from `output_activation`.

    Returns:
        A `keras.losses.Loss`.
    """
    if activation == "sigmoid":
        return keras.losses.BinaryCrossentropy()
    if outputs.shape[-1] == 1:
        return keras.losses.MeanSquaredError()
    from_logits = activation != "softmax"
    if len(labels.shape) == len(outputs.shape) and (
        labels.shape[-1] == outputs.shape[-1]
    ):
        return keras.losses.CategoricalCrossentropy(from_logits=from_logits)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def output_shape(model):
    """Shape of `model`'s one output without the batch axis, or `None`."""
    outputs = getattr(model, "outputs", None)
    if not outputs:
        return None
    if len(outputs) > 1:
        raise ValueError(
            "The Distiller takes models with one output. "
            f"Received: {model.name!r} with {len(outputs)} outputs."
        )
    return tuple(outputs[0].shape[1:])


def check_model(name, model):
    """Raises a `TypeError` naming `name` unless `model` is a Keras model."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"{name} must be a keras.Model. "
            f"Received: {name}={model!r} of type {type(model).__name__}"
        )


def check_model_list(name, models, minimum=1):
    """Raises unless `models` is a list or tuple of `minimum` or more models.

    A `TypeError` names `name`, or `name[i]` for an element that is not a
    Keras model; a `ValueError` says how many models are needed.
    """
    if not isinstance(models, (list, tuple)):
        raise TypeError(
            f"{name} must be a list of keras.Model. Received: {name}={models!r}"
        )
    if len(models) < minimum:
        raise ValueError(
            f"{name} must list at least {minimum} keras.Model. "
            f"Received: {name}={models!r}"
        )
    for i, model in enumerate(models):
        check_model(f"{name}[{i}]", model)


def check_models(teacher, student):
    """Checks a teacher and student pair; returns their output shape."""
    check_model("teacher", teacher)
    check_model("student", student)
    if teacher is student:
        raise ValueError(
            "teacher and student must be different models; distilling a "
            "model into itself trains nothing. Clone it with "
            "keras.models.clone_model for self-distillation."
        )
    if student.built and not student.trainable_weights:
        raise ValueError(
            f"The student {student.name!r} has no trainable weights. "
            "Set student.trainable = True or pass an untrained student."
        )
    teacher_shape, student_shape = (
        output_shape(teacher),
        output_shape(student),
    )
    if None not in (teacher_shape, student_shape) and (
        teacher_shape != student_shape
    ):
        raise ValueError(
            "teacher and student outputs must have the same shape. "
            f"Received: teacher output {teacher_shape}, "
            f"student output {student_shape}."
        )
    return student_shape


class _PerSampleLoss(keras.losses.Loss):
    """A loss function `fn(y_true, y_pred)` with Keras' reductions."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


def label_loss(loss_fn, labels, outputs, activation):
    """The hard-label loss as a `keras.losses.Loss`.

    `loss_fn` as given (a plain function `fn(y_true, y_pred)` is wrapped
    with Keras' reductions), or `default_label_loss` when it is `None`.
    """
    if loss_fn is None:
        return default_label_loss(labels, outputs, activation)
    if isinstance(loss_fn, keras.losses.Loss):
        return loss_fn
    return _PerSampleLoss(loss_fn)
