"""What a model outputs: its activation, its logits, its named layers.

Distillation losses compare logits. A teacher or student that ends in a
softmax or a sigmoid returns probabilities, so the trainers read the logits
the activation was applied to: from the model's graph when they are there
(a `Softmax` or `Activation` layer, a `Dense` layer with that activation),
or by inverting the activation (a subclassed model). `ModelView` returns a
model's output, its logits and the outputs of the layers the feature losses
name, in one call.
"""

import collections

import keras
import numpy as np
from keras import ops

from kd_keras import compat

# Inverting a softmax, `log(p)` is a valid logit; the clip keeps `log(0)`
# finite and is as small as float32 allows, so that it changes nothing else.
_SMALLEST_PROBABILITY = float(np.finfo("float32").tiny)
_ACTIVATIONS = ("softmax", "sigmoid")

Outputs = collections.namedtuple("Outputs", ["output", "logits", "features"])
Outputs.__doc__ = """A model's outputs on a batch.

`output` as the model returns it, `logits` as float32 logits (see
`views.to_logits`), `features` the outputs of the named layers, in order.
"""


def layers_of(model):
    """Every layer of `model`, nested models' layers included, in order."""
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from layers_of(layer)


def single_output(model, role):
    """The one output tensor of a model with a graph, or `None`.

    `None` when `model` has no graph to read (subclassed, or not built).

    Raises:
        ValueError: If `model` has several outputs, naming `role`.
    """
    outputs = getattr(model, "outputs", None)
    if not outputs:
        return None
    if len(outputs) > 1:
        raise ValueError(
            f"The {role} must have one output. Received: {model.name!r} "
            f"with {len(outputs)} outputs."
        )
    return outputs[0]


def output_shape(model, role="model"):
    """Shape of `model`'s one output without the batch axis, or `None`."""
    output = single_output(model, role)
    return None if output is None else tuple(output.shape[1:])


def _output_layer(model):
    output = single_output(model, "model")
    if output is not None:
        return compat.producing_layer(output)
    return model.layers[-1] if getattr(model, "layers", None) else None


def _activation_name(layer):
    # A `Softmax`/`Activation` layer, or the `keras.ops.softmax`/`sigmoid`
    # operations (classes `Softmax`/`Sigmoid` in `keras.src.ops.nn`).
    operation = type(layer).__name__.lower()
    if operation in _ACTIVATIONS:
        return operation
    name = getattr(getattr(layer, "activation", None), "__name__", None)
    return name if name in _ACTIVATIONS else None


def output_activation(model):
    """`"softmax"`, `"sigmoid"` or `None`: the activation of `model`'s output.

    Recognises a `Softmax` layer and any layer whose `activation` is softmax
    or sigmoid (`Dense(..., activation="softmax")`, `Activation`), directly
    or at the end of a nested model.
    """
    layer = _output_layer(model)
    if isinstance(layer, keras.Model):
        return output_activation(layer)
    return None if layer is None else _activation_name(layer)


class _PreActivation(keras.layers.Layer):
    """What a `Dense` layer computes before its activation, with its weights.

    A plain holder of the layer: the view that uses it shares the weights,
    which stay tracked (and saved) by the model that owns them.
    """

    def __init__(self, dense, **kwargs):
        super().__init__(**kwargs)
        self._dense = [dense]

    def call(self, inputs):
        dense = self._dense[0]
        outputs = ops.matmul(inputs, dense.kernel)
        return outputs + dense.bias if dense.use_bias else outputs


def _graph_logits(model):
    """The tensor of `model`'s logits in its graph, or `None`.

    The input of a final softmax or sigmoid layer or operation, or what a
    final `Dense` layer computes before its softmax or sigmoid.
    """
    output = single_output(model, "model")
    if output is None:
        return None
    layer = compat.producing_layer(output)
    activation = _activation_name(layer)
    if activation is None or isinstance(layer, keras.Model):
        return None
    inputs = compat.layer_inputs(output)
    if len(inputs) != 1:
        return None
    if type(layer).__name__.lower() in _ACTIVATIONS or (
        isinstance(layer, keras.layers.Activation)
    ):
        return inputs[0]
    if isinstance(layer, keras.layers.Dense):
        return _PreActivation(layer, name=f"{layer.name}_logits")(inputs[0])
    return None


def to_logits(outputs, activation):
    """`outputs` as float32 logits, inverting the output's activation.

    A softmax output becomes its log-probabilities (logits up to a constant
    per sample, which softmax ignores); a sigmoid output `p` becomes
    `log(p / (1 - p))`. Probabilities are clipped at float32's smallest
    normal number, so that nothing but an exact 0 or 1 changes. Use the
    logits of the graph where they exist (`ModelView`): a confident
    model's smallest probabilities underflow float32.
    """
    outputs = ops.cast(outputs, "float32")
    if activation == "softmax":
        return ops.log(ops.maximum(outputs, _SMALLEST_PROBABILITY))
    if activation == "sigmoid":
        p = ops.clip(outputs, _SMALLEST_PROBABILITY, 1.0)
        return ops.log(p) - ops.log(
            ops.maximum(1.0 - outputs, _SMALLEST_PROBABILITY)
        )
    return outputs


def _graph(model, role):
    """`(inputs, output)` of a functional or Sequential `model`."""
    if not compat.has_graph(model):
        raise TypeError(
            f"Feature distillation reads the outputs of the {role}'s layers "
            f"by name, which needs a graph of layers: the {role} "
            f"{model.name!r} is a subclassed {type(model).__name__}, whose "
            "call() is Python code Keras cannot look inside. Rebuild it as "
            "a functional or Sequential model, or distill its outputs only."
        )
    output = single_output(model, role)
    if output is None or not model.inputs:
        raise ValueError(
            f"Build the {role} {model.name!r} before reading its layers: "
            "start it with keras.Input(shape=...) or call it once on data."
        )
    return model.inputs, output


def layer_output(model, layer_name, role):
    """The output tensor of `model`'s layer `layer_name`.

    Raises:
        TypeError: If `model` is subclassed.
        ValueError: If it is not built or has no such layer.
    """
    _graph(model, role)
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(
            f"The {role} {model.name!r} has no layer named {layer_name!r}. "
            f"Its layers: {', '.join(names)}."
        )
    return model.get_layer(layer_name).output


def feature_shape(model, layer_name, role="model"):
    """Shape, without the batch axis, of a layer's output (`None`: output)."""
    if layer_name is None:
        return output_shape(model, role)
    return tuple(layer_output(model, layer_name, role).shape[1:])


class ModelView:
    """A model's output, logits and named layers' outputs, in one call.

    Reads the logits from the graph when the model ends in a softmax or
    sigmoid it can see (see `to_logits` otherwise). The view shares the
    model's layers and weights: training through it trains the model. A
    plain object, not a layer, so that Keras tracks (and saves) the
    model's weights once, through the model.

    Args:
        model: A `keras.Model`.
        layer_names: Names of layers whose outputs to return; they need a
            functional or Sequential model.
        role: `"teacher"` or `"student"`, for error messages.
    """

    def __init__(self, model, layer_names, role):
        self.model = model
        self.activation = output_activation(model)
        self.layer_names = list(layer_names)
        logits = _graph_logits(model) if self.activation else None
        extra = [layer_output(model, name, role) for name in self.layer_names]
        self._reads_logits = logits is not None
        if logits is not None:
            extra.insert(0, logits)
        self._graph = None
        if extra:
            inputs, output = _graph(model, role)
            self._graph = keras.Model(
                inputs, [output, *extra], name=f"{model.name}_view"
            )

    def __call__(self, x, training=False):
        """`Outputs` of the model on `x`."""
        if self._graph is None:
            output, extra = self.model(x, training=training), []
        else:
            output, *extra = self._graph(x, training=training)
        if self._reads_logits:
            logits, *features = extra
            logits = ops.cast(logits, "float32")
        else:
            logits, features = to_logits(output, self.activation), extra
        return Outputs(output, logits, features)
