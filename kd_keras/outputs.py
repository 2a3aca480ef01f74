"""What a model's output is: logits, softmax or sigmoid probabilities."""

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
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
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

    Mean squared error for single-unit outputs; otherwise categorical
    cross-entropy for one-hot `labels` and sparse categorical cross-entropy
    for integer labels, from logits unless `activation` is `"softmax"`.

    Args:
        labels: The labels (their shape decides one-hot or integer).
        outputs: The model's outputs.
        activation: The output activation, from `output_activation`.

    Returns:
        A `keras.losses.Loss`.
    """
    if outputs.shape[-1] == 1:
        return keras.losses.MeanSquaredError()
    from_logits = activation != "softmax"
    if len(labels.shape) == len(outputs.shape) and (
        labels.shape[-1] == outputs.shape[-1]
    ):
        return keras.losses.CategoricalCrossentropy(from_logits=from_logits)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
