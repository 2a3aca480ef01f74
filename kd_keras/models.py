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


def build(architecture, role, input_shape, num_classes, rescale=None):
    """The built-in `"teacher"`, `"assistant"` or `"student"` model.

    Args:
        architecture: `"mlp"` or `"cnn"` (images only).
        role: `"teacher"`, `"assistant"` (between the two, for TAKD) or
            `"student"`.
        input_shape: Shape of one sample.
        num_classes: Number of classes.
        rescale: A factor applied to the inputs first by a
            `keras.layers.Rescaling` layer (`1 / 255` for images of pixels
            in [0, 255]), or `None`. Defaults to `None`.

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
    model = _BUILDERS[architecture, role](tuple(input_shape), num_classes)
    if rescale is None:
        return model
    # The built-in models are chains: the same layers, called after the
    # rescaling, keep their names for the feature losses.
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = layers.Rescaling(rescale, name="rescaling")(inputs)
    for layer in model.layers[1:]:
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


# Keras Applications whose models take pixels in [0, 255] as they are
# (their preprocessing is built in), and the others with the layers that
# do their `preprocess_input`.
_PIXELS_IN_MODEL = (
    "MobileNetV3Small",
    "MobileNetV3Large",
    *(f"EfficientNetB{i}" for i in range(8)),
    *(f"EfficientNetV2B{i}" for i in range(4)),
    "EfficientNetV2S",
    "EfficientNetV2M",
    "EfficientNetV2L",
    "ConvNeXtTiny",
    "ConvNeXtSmall",
    "ConvNeXtBase",
)
# "tf" preprocessing: pixels scaled to [-1, 1].
_PIXELS_TO_PLUS_MINUS_ONE = (
    "MobileNet",
    "MobileNetV2",
    "NASNetMobile",
    "Xception",
    "InceptionV3",
    "ResNet50V2",
    "ResNet101V2",
)
APPLICATIONS = _PIXELS_IN_MODEL + _PIXELS_TO_PLUS_MINUS_ONE
# Keras Applications keep BatchNormalization's moving statistics with a
# momentum of up to 0.999, made for ImageNet: trained from scratch on a few
# thousand images, a MobileNetV3Small then scored chance (0.097) on its
# validation images for 8 epochs where 0.9 reached 0.80.
_SCRATCH_BATCHNORM_MOMENTUM = 0.9


def application(
    name,
    input_shape,
    num_classes,
    weights=None,
    augmentation=(),
    batchnorm_momentum=_SCRATCH_BATCHNORM_MOMENTUM,
):
    """A Keras Application as a classifier returning logits.

    It takes images of pixels in [0, 255], as
    `keras.utils.image_dataset_from_directory` reads them: the
    Application's own preprocessing, or the layers doing its
    `preprocess_input`, come first. The Application is one nested model,
    named `name`: its layers are named `"<name>/<layer>"` in feature losses
    (`kd_keras.losses.AttentionTransfer("...", "MobileNetV3Small/...")`).

    Args:
        name: One of `kd_keras.models.APPLICATIONS`, e.g.
            `"MobileNetV3Small"`, `"EfficientNetB0"`, `"MobileNetV2"`.
        input_shape: `(height, width, channels)` of one image.
        num_classes: Number of classes.
        weights: `None` to train from scratch (nothing is downloaded), or
            `"imagenet"` for ImageNet weights (downloaded by Keras; the
            classifier on top is new). Defaults to `None`.
        augmentation: Layers applied to the images first, such as
            `keras.layers.RandomFlip("horizontal")`: active in training
            only, as Keras' random layers are, so a teacher's cached
            outputs stay right. Defaults to `()`.
        batchnorm_momentum: Momentum of every `BatchNormalization` layer
            when training from scratch (`weights=None`); ImageNet weights
            keep the Application's. Defaults to `0.9`.

    Returns:
        A functional `keras.Model` returning logits.

    Example:

    >>> student = kd_keras.models.application(
    ...     "MobileNetV3Small", (32, 32, 3), num_classes=10
    ... )
    >>> student.layers[-1].name
    'MobileNetV3Small'
    """
    if name not in APPLICATIONS:
        raise ValueError(
            f"name must be a Keras Application kd_keras builds: "
            f"{', '.join(APPLICATIONS)}. Received: name={name!r}"
        )
    if weights not in (None, "imagenet"):
        raise ValueError(
            f"weights must be None or 'imagenet'. Received: weights={weights!r}"
        )
    options = {"input_shape": tuple(input_shape), "weights": weights}
    if weights is None:
        options.update(
            include_top=True, classes=num_classes, classifier_activation=None
        )
    else:
        options.update(include_top=False, pooling="avg")
    if name.startswith(("MobileNetV3", "EfficientNetV2", "ConvNeXt")):
        options["include_preprocessing"] = True
    backbone = getattr(keras.applications, name)(**options)
    backbone.name = name
    if weights is None:
        for layer in backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = batchnorm_momentum
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for layer in augmentation:
        x = layer(x)
    if name in _PIXELS_TO_PLUS_MINUS_ONE:
        x = layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(x)
    x = backbone(x)
    if weights is not None:
        x = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, x, name=f"{name.lower()}_classifier")


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
    "application",
    "ARCHITECTURES",
    "APPLICATIONS",
]
