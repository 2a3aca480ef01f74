"""What a model outputs: its activation, its logits, its named layers.

Distillation losses compare logits. A teacher or student that ends in a
softmax or a sigmoid returns probabilities, so the trainers read the logits
the activation was applied to: from the model's graph when they are there
(a `Softmax` or `Activation` layer, a `Dense` layer with that activation),
or by inverting the activation (a subclassed model). `ModelView` returns a
model's output, its logits and the outputs of the layers the feature losses
name, in one call; a layer inside a nested model is named by its path, the
names joined by "/" (`"MobileNetV3Small/expanded_conv_2_add"`).
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
    return _logits_before(single_output(model, "model"))


def _logits_before(output):
    """The logits that the layer producing `output` (a symbolic tensor, or
    `None`) turned into probabilities, or `None` (see `_graph_logits`)."""
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


def from_logits(logits, activation):
    """The output a model ending in `activation` (`"softmax"`,
    `"sigmoid"` or `None`) returns for `logits`: `to_logits` undone."""
    if activation == "softmax":
        return ops.softmax(logits, axis=-1)
    if activation == "sigmoid":
        return ops.sigmoid(logits)
    return logits


def _graph(model, role, description=None):
    """`(inputs, output)` of a functional or Sequential `model`.

    `description` names `model` in messages (default: the `role` and its
    name); the graph of a nested model may have several outputs.
    """
    nested = description is not None
    if description is None:
        description = f"{role} {model.name!r}"
    if not compat.has_graph(model):
        raise TypeError(
            f"Feature distillation reads the outputs of the {role}'s layers "
            f"by name, which needs a graph of layers: the {description} is "
            f"a subclassed {type(model).__name__}, whose call() is Python "
            "code Keras cannot look inside. Rebuild it as a functional or "
            "Sequential model, or distill its outputs only."
        )
    if nested:
        output = getattr(model, "outputs", None) or None
    else:
        output = single_output(model, role)
    if output is None or not getattr(model, "inputs", None):
        raise ValueError(
            f"Build the {description} before reading its layers: start it "
            "with keras.Input(shape=...) or call it once on data."
        )
    return model.inputs, output


# Joins the names of a path to a layer inside nested models: "outer/inner".
# Keras refuses "/" in a layer's name, so a path is never a layer's name.
_SEPARATOR = "/"


def _is_graph_model(layer):
    """Whether `layer` is a functional or Sequential model."""
    return isinstance(layer, keras.Model) and compat.has_graph(layer)


def _join(names):
    return _SEPARATOR.join(names)


def _nested_paths(model, name, prefix=()):
    """Paths to the layers called `name` inside `model`'s nested models."""
    for layer in model.layers:
        if _is_graph_model(layer):
            inner = (*prefix, layer.name)
            if any(each.name == name for each in layer.layers):
                yield _join((*inner, name))
            yield from _nested_paths(layer, name, inner)


def _listed(layer, prefix, wanted):
    """`layer`'s name in a list of layers; a model's, with how to name
    its layers (e.g. the one called `wanted`, if it has one)."""
    if not _is_graph_model(layer) or not layer.layers:
        return layer.name
    path = _join((*prefix, layer.name))
    examples = [*_nested_paths(layer, wanted, (*prefix, layer.name))]
    if any(each.name == wanted for each in layer.layers):
        examples.insert(0, _join((path, wanted)))
    if not examples:
        inner = [
            each
            for each in layer.layers
            if not isinstance(each, keras.layers.InputLayer)
        ]
        examples = [_join((path, (inner or layer.layers)[0].name))]
    return (
        f"{layer.name} (a model: name its layers as '{path}/<layer>', "
        f"e.g. {examples[0]!r})"
    )


def _did_you_mean(model, names, depth):
    """The sentence proposing the paths to the layers called `names[depth]`
    in `model`'s nested models, or `""`."""
    rest = names[depth + 1 :]
    guesses = [
        _join((path, *rest))
        for path in _nested_paths(model, names[depth])
        if _join((path, *rest)) != _join(names)
    ]
    if len(guesses) == 1:
        return f" Did you mean {guesses[0]!r}?"
    if guesses:
        return f" Did you mean one of {', '.join(map(repr, guesses))}?"
    return ""


def _no_such_layer(model, owner, names, depth, role):
    """The error for the path `names` to a layer of `model`, whose nested
    model `owner` (`model` itself at depth 0) lacks `names[depth]`."""
    prefix, name = names[:depth], names[depth]
    where = f": {_join(prefix)!r} has no layer named {name!r}" if depth else ""
    layers = ", ".join(_listed(layer, prefix, name) for layer in owner.layers)
    message = (
        f"The {role} {model.name!r} has no layer named {_join(names)!r}"
        f"{where}. Its layers: {layers}."
    )
    message += _did_you_mean(model, names, depth)
    return ValueError(message)


def _layer_path(model, layer_name, role):
    """The names along the path `layer_name` to a layer of `model`.

    Raises:
        TypeError: If a model on the path is subclassed.
        ValueError: If the path is malformed, leads nowhere or goes
            through a layer that is not a model.
    """
    names = tuple(layer_name.split(_SEPARATOR))
    if not all(names):
        raise ValueError(
            f"The {role}'s layers are named by their names, and a layer of "
            f"a nested model by a path of names joined by {_SEPARATOR!r} "
            f"(e.g. 'backbone/conv_1'). Received: {layer_name!r}."
        )
    owner = model
    for depth, name in enumerate(names):
        if depth:
            outer = _join(names[:depth])
            if not isinstance(owner, keras.Model):
                raise ValueError(
                    f"The {role} {model.name!r} has no layer named "
                    f"{layer_name!r}: {outer!r} is a "
                    f"{type(owner).__name__} layer, not a model with "
                    "layers of its own." + _did_you_mean(model, names, depth)
                )
            _graph(owner, role, f"{role}'s model {outer!r}")
        if name not in [layer.name for layer in owner.layers]:
            raise _no_such_layer(model, owner, names, depth, role)
        owner = owner.get_layer(name)
    return names


def _graph_of(model):
    """`(inputs, outputs)` of a functional or Sequential `model`, as it
    is called: the structures it was built with."""
    if isinstance(model, keras.Sequential):
        return model.inputs[0], model.outputs[0]
    return model.input, model.output


def _read(model, paths):
    """`(inputs, outputs, tensors)`: `model`'s graph and, in it, the
    outputs of the layers at `paths` (checked tuples of names).

    A layer of `model` is read from `model`'s own graph. A nested model,
    or a layer inside it, is read from a copy of that graph made of the
    same layers (`keras.models.clone_model` with the layers themselves as
    their clones), where each nested model a path goes into is called
    through a view of it returning its outputs and those of the layers
    named inside it (recursively). Each layer is called once, as in the
    model: the copy computes what the model computes, with its weights.
    """
    inputs, outputs = _graph_of(model)
    layers = [model.get_layer(path[0]) for path in paths]
    if not any(isinstance(layer, keras.Model) for layer in layers):
        return inputs, outputs, [layer.output for layer in layers]
    inner = {}
    for path, layer in zip(paths, layers, strict=True):
        if len(path) > 1:
            inner.setdefault(id(layer), (layer, {}))[1].setdefault(path[1:])
    views = {}
    for key, (layer, names) in inner.items():
        view_inputs, view_outputs, tensors = _read(layer, list(names))
        flat = keras.tree.flatten(view_outputs)
        view = keras.Model(
            view_inputs, [*flat, *tensors], name=f"{layer.name}_view"
        )
        views[key] = view, view_outputs, len(flat)

    calls = {}

    def call(layer, *args, **kwargs):
        if id(layer) not in views:
            outputs, tensors = layer(*args, **kwargs), []
        else:
            view, structure, size = views[id(layer)]
            flat = view(*args, **kwargs)
            outputs = keras.tree.pack_sequence_as(structure, flat[:size])
            tensors = flat[size:]
        calls.setdefault(id(layer), (outputs, tensors))
        return outputs

    # A new Functional of the same graph, so that the copy is not compiled.
    copy = keras.models.clone_model(
        keras.Model(inputs, outputs),
        clone_function=lambda layer: layer,
        call_function=call,
    )
    tensors = []
    for path, layer in zip(paths, layers, strict=True):
        outputs, features = calls[id(layer)]
        if len(path) == 1:
            tensors.append(outputs)
        else:
            tensors.append(features[list(inner[id(layer)][1]).index(path[1:])])
    return copy.input, copy.output, tensors


def _read_outputs(model, layer_names, role):
    """`(inputs, output, tensors)`: `model`'s inputs and output, and the
    outputs of the layers `layer_names` (names or paths), all in one graph
    (see `_read`).

    Raises:
        TypeError: If `model`, or a model a path goes into, is subclassed.
        ValueError: If `model` is not built or has no such layer.
    """
    _graph(model, role)
    paths = [_layer_path(model, name, role) for name in layer_names]
    inputs, outputs, tensors = _read(model, paths)
    return keras.tree.flatten(inputs), keras.tree.flatten(outputs)[0], tensors


def layer_output(model, layer_name, role):
    """The output tensor of `model`'s layer `layer_name`.

    A layer of a nested model (a functional or Sequential model called in
    `model`) is named by its path, the names from `model`'s layer down
    joined by "/": `"backbone/conv_1"`, `"a/b/c"`. Its output, or the
    output of the nested model named by itself, is then a tensor of a copy
    of `model`'s graph made of the same layers, connected to the copy's
    inputs (see `ModelView`); the tensor of a plain name is the layer's
    `output` in `model`'s own graph.

    Args:
        model: A functional or Sequential `keras.Model`.
        layer_name: The name of one of its layers, or a path to a layer of
            a nested model.
        role: `"teacher"` or `"student"`, for error messages.

    Raises:
        TypeError: If `model`, or a model the path goes into, is
            subclassed.
        ValueError: If it is not built or has no such layer. The message
            lists the layers where the name was looked for, and the paths
            to the layers of their nested models.
    """
    return _read_outputs(model, [layer_name], role)[2][0]


def feature_shape(model, layer_name, role="model"):
    """Shape, without the batch axis, of a layer's output (`None`: output).

    `layer_name` is a name or a path into nested models, as
    `layer_output` takes it (`"backbone/conv_1"`).
    """
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

    A layer inside a nested model (a Keras Application behind augmentation
    layers, say) is named by its path: the names from the model's layer
    down, joined by "/", as in `"MobileNetV3Small/expanded_conv_2_add"`
    (any depth: `"a/b/c"`); a nested model's name alone reads its output.
    The view then calls a copy of the model's graph made of the same
    layers, where each nested model a path goes into is called once,
    through a view of it that also returns the named layer's output: the
    weights are the model's, `training` reaches every layer as in the
    model's own call, and nothing is added to the model.

    Args:
        model: A `keras.Model`.
        layer_names: Names of layers whose outputs to return, or paths to
            layers of nested models; they need a functional or Sequential
            model (and nested models).
        role: `"teacher"` or `"student"`, for error messages.
    """

    def __init__(self, model, layer_names, role):
        self.model = model
        self.activation = output_activation(model)
        self.layer_names = list(layer_names)
        extra, logits = [], None
        if self.layer_names:
            inputs, output, extra = _read_outputs(model, self.layer_names, role)
            if self.activation:
                logits = _logits_before(output)
        elif self.activation:
            logits = _graph_logits(model)
            if logits is not None:
                inputs, output = _graph(model, role)
        self._reads_logits = logits is not None
        if logits is not None:
            extra.insert(0, logits)
        self._graph = None
        if extra:
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
