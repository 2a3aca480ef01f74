"""Teacher and student builders: plain functional Keras models with logits."""

import keras
from keras import layers


def mlp(input_shape, num_classes, hidden_units, dropout=0.0, name="mlp"):
    """A multilayer perceptron returning logits.

    Args:
        input_shape: Shape of one sample; images are flattened.
        num_classes: Number of output logits.
        hidden_units: Width of each hidden ReLU layer, e.g. `(256, 256)`.
        dropout: Dropout rate after each hidden layer. Defaults to `0.0`.
        name: Model name. Defaults to `"mlp"`.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> model = kd_keras.models.mlp((4,), num_classes=3, hidden_units=(8,))
    >>> model.count_params()  # (4 * 8 + 8) + (8 * 3 + 3)
    67
    """
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    for i, units in enumerate(hidden_units):
        x = layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def mlp_teacher(input_shape, num_classes, dropout=0.2):
    """The case-study teacher: three hidden layers of 256 units.

    Args:
        input_shape: Shape of one sample.
        num_classes: Number of classes.
        dropout: Dropout rate after each hidden layer. Defaults to `0.2`.

    Example:

    >>> kd_keras.models.mlp_teacher((64,), num_classes=10).count_params()
    150794
    """
    return mlp(
        input_shape, num_classes, (256, 256, 256), dropout, "mlp_teacher"
    )


def mlp_student(input_shape, num_classes):
    """The case-study student: one hidden layer of 128 units.

    Args:
        input_shape: Shape of one sample.
        num_classes: Number of classes.

    Example:

    >>> student = kd_keras.models.mlp_student((64,), num_classes=10)
    >>> student.count_params()  # (64 * 128 + 128) + (128 * 10 + 10)
    9610
    """
    return mlp(input_shape, num_classes, (128,), name="mlp_student")


def cnn(input_shape, num_classes, filters, dense_units, name="cnn"):
    """A small convolutional classifier returning logits.

    Each entry of `filters` adds a 3x3 ReLU convolution and a 2x2 max pool.

    Args:
        input_shape: `(height, width, channels)` of one image.
        num_classes: Number of output logits.
        filters: Filters of each convolution block, e.g. `(32, 64)`.
        dense_units: Width of the hidden dense layer.
        name: Model name. Defaults to `"cnn"`.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> model = kd_keras.models.cnn((8, 8, 1), 2, filters=(4,), dense_units=8)
    >>> [layer.name for layer in model.layers][1:3]
    ['conv_0', 'pool_0']
    >>> model.count_params()  # 40 + (4 * 4 * 4 * 8 + 8) + (8 * 2 + 2)
    578
    """
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = inputs
    for i, count in enumerate(filters):
        x = layers.Conv2D(
            count, 3, padding="same", activation="relu", name=f"conv_{i}"
        )(x)
        x = layers.MaxPooling2D(name=f"pool_{i}")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def cnn_teacher(input_shape=(28, 28, 1), num_classes=10):
    """A CNN teacher: 32-64-128 filters and a 256-unit dense layer.

    Args:
        input_shape: `(height, width, channels)` of one image. Defaults to
            `(28, 28, 1)`.
        num_classes: Number of classes. Defaults to `10`.

    Example:

    >>> kd_keras.models.cnn_teacher().count_params()
    390410
    """
    return cnn(input_shape, num_classes, (32, 64, 128), 256, "cnn_teacher")


def cnn_student(input_shape=(28, 28, 1), num_classes=10):
    """A CNN student: 8-16 filters and a 32-unit dense layer.

    Args:
        input_shape: `(height, width, channels)` of one image. Defaults to
            `(28, 28, 1)`.
        num_classes: Number of classes. Defaults to `10`.

    Example:

    >>> kd_keras.models.cnn_student().count_params()  # 15x fewer
    26698
    """
    return cnn(input_shape, num_classes, (8, 16), 32, "cnn_student")


def mlp_assistant(input_shape, num_classes):
    """A teacher assistant between the MLP teacher and student: 2x192.

    Args:
        input_shape: Shape of one sample.
        num_classes: Number of classes.

    Example:

    >>> kd_keras.models.mlp_assistant((64,), num_classes=10).count_params()
    51466
    """
    return mlp(input_shape, num_classes, (192, 192), name="mlp_assistant")


def cnn_assistant(input_shape=(28, 28, 1), num_classes=10):
    """A teacher assistant between the CNN teacher and student: 16-32+64.

    Args:
        input_shape: `(height, width, channels)` of one image. Defaults to
            `(28, 28, 1)`.
        num_classes: Number of classes. Defaults to `10`.

    Example:

    >>> kd_keras.models.cnn_assistant().count_params()
    105866
    """
    return cnn(input_shape, num_classes, (16, 32), 64, "cnn_assistant")


def copy_model(model, name, same_weights=True):
    """A model of `model`'s architecture named `name`.

    Args:
        model: The model to copy.
        name: The copy's name.
        same_weights: Whether the copy starts from `model`'s weights, or
            from new ones drawn by its initializers. Defaults to `True`.

    Example:

    >>> model = kd_keras.models.mlp((4,), 3, (8,))
    >>> twin = kd_keras.models.copy_model(model, "twin")
    >>> twin.name, bool((twin.get_weights()[0] == model.get_weights()[0]).all())
    ('twin', True)
    """
    copy = keras.models.clone_model(model)
    if same_weights:
        copy.set_weights(model.get_weights())
    copy.name = name
    return copy


ARCHITECTURES = ("mlp", "cnn")
_BUILDERS = {
    ("mlp", "teacher"): mlp_teacher,
    ("mlp", "student"): mlp_student,
    ("cnn", "teacher"): cnn_teacher,
    ("cnn", "student"): cnn_student,
    ("mlp", "assistant"): mlp_assistant,
    ("cnn", "assistant"): cnn_assistant,
}


def build(architecture, role, input_shape, num_classes):
    """The built-in `"teacher"`, `"assistant"` or `"student"` model.

    Args:
        architecture: `"mlp"` or `"cnn"` (images only).
        role: `"teacher"`, `"assistant"` (between the two, for TAKD) or
            `"student"`.
        input_shape: Shape of one sample.
        num_classes: Number of classes.

    Returns:
        A functional `keras.Model` returning logits.

    Example:

    >>> model = kd_keras.models.build("mlp", "student", (64,), 10)
    >>> model.name
    'mlp_student'
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {', '.join(ARCHITECTURES)}. "
            f"Received: architecture={architecture!r}"
        )
    if architecture == "cnn" and len(input_shape) != 3:
        raise ValueError(
            "The cnn architecture takes images (height, width, channels). "
            f"Received: input_shape={tuple(input_shape)}; use mlp."
        )
    return _BUILDERS[architecture, role](tuple(input_shape), num_classes)


__all__ = [
    "mlp",
    "mlp_teacher",
    "mlp_student",
    "cnn",
    "cnn_teacher",
    "cnn_student",
    "mlp_assistant",
    "cnn_assistant",
    "copy_model",
    "build",
    "ARCHITECTURES",
]
