"""Reading a model's intermediate outputs (features) by layer name."""

import keras


def _graph(model, role):
    """`(inputs, output)` of a functional or Sequential `model`."""
    # `keras.Model(inputs, outputs)` builds a `Functional`, a class Keras
    # does not export.
    has_graph = isinstance(model, keras.Sequential) or any(
        cls.__name__ == "Functional" for cls in type(model).__mro__
    )
    if not has_graph:
        raise TypeError(_subclassed_message(model, role))
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(
            f"Build the {role} {model.name!r} before reading its layers: "
            "start it with keras.Input(shape=...) or call it once on data."
        )
    return inputs, outputs[0]


def _subclassed_message(model, role):
    return (
        f"Feature distillation reads the outputs of the {role}'s layers by "
        f"name, which needs a graph of layers: the {role} {model.name!r} "
        f"is a subclassed {type(model).__name__}, whose call() is Python "
        "code Keras cannot look inside. Rebuild it as a functional or "
        "Sequential model, or distill its outputs only."
    )


def feature_model(model, layer_names, role):
    """A model returning `[output, *outputs of the named layers]`.

    It shares `model`'s layers and weights; training it trains `model`.

    Args:
        model: A functional or Sequential `keras.Model`, built.
        layer_names: Names of layers of `model`.
        role: `"teacher"` or `"student"`, for error messages.

    Returns:
        A functional `keras.Model`.

    Raises:
        TypeError: If `model` is subclassed.
        ValueError: If it is not built or a name is not one of its layers.
    """
    inputs, output = _graph(model, role)
    names = [layer.name for layer in model.layers]
    features = []
    for name in layer_names:
        if name not in names:
            raise ValueError(
                f"The {role} {model.name!r} has no layer named {name!r}. "
                f"Its layers: {', '.join(names)}."
            )
        features.append(model.get_layer(name).output)
    return keras.Model(inputs, [output, *features], name=f"{model.name}_view")


def feature_shape(model, layer_name):
    """Shape, without the batch axis, of a layer's output (`None`: output)."""
    if layer_name is None:
        return tuple(model.outputs[0].shape[1:])
    return tuple(model.get_layer(layer_name).output.shape[1:])
