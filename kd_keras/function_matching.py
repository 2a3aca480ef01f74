"""Function matching: distillation on shared, aggressively mixed inputs."""

import keras
import tensorflow as tf
from keras import ops

from kd_keras import losses as kd_losses
from kd_keras.distiller import Distiller
from kd_keras.hyperparameters import (
    Default,
    check_non_negative,
    check_temperature,
)

_DEFAULT_TEMPERATURE = Default(1.0)
# Halvings of [1/2, 1] that locate the mixup coefficient to float32's
# resolution (2**-25).
_BISECTIONS = 24


def _as_float(x):
    if keras.backend.is_float_dtype(x.dtype):
        return x
    return ops.cast(x, keras.config.floatx())


def larger_beta_share(alpha, uniform):
    """`max(L, 1 - L)` for `L ~ Beta(alpha, alpha)`, from a uniform draw.

    Inverse-CDF sampling: `max(L, 1 - L)` has the CDF `2 F(t) - 1` on
    [1/2, 1], `F` the regularized incomplete beta function, so it is the
    `t` with `F(t) = (1 + uniform) / 2`, found by bisection. Unlike a gamma
    sampler (`keras.random.beta`), it compiles with XLA.

    Args:
        alpha: Concentration `alpha > 0`.
        uniform: A draw from the uniform distribution on [0, 1).

    Returns:
        The coefficient, in [1/2, 1], float32.
    """
    alpha = ops.cast(alpha, "float32")
    target = 0.5 * (1.0 + ops.cast(uniform, "float32"))
    low, high = ops.full_like(target, 0.5), ops.ones_like(target)
    for _ in range(_BISECTIONS):
        middle = 0.5 * (low + high)
        below = tf.math.betainc(alpha, alpha, middle) < target
        low = ops.where(below, middle, low)
        high = ops.where(below, high, middle)
    return 0.5 * (low + high)


@keras.saving.register_keras_serializable(package="kd_keras")
class FunctionMatching(Distiller):
    """Distillation as function matching: "patient and consistent" KD.

    Beyer et al. treat distillation as matching the teacher's function,
    not its labels: at every step the batch is augmented and mixed, and
    teacher and student see the very same augmented images ("consistent"
    teaching), for many epochs ("patient" teaching). The labels are not
    used: the loss is the distillation loss alone.

    `prepare_batch`, called at the top of each training step, applies
    `augmentation` (with `training=True`) and then mixup with one
    coefficient for the whole batch, each example mixed with its neighbour
    in the batch, as in the authors' big_vision code:

    ```python
    x = augmentation(x, training=True)
    lam = Beta(mixup_alpha, mixup_alpha).sample()
    lam = max(lam, 1 - lam)          # the batch's own images dominate
    x = lam * x + (1 - lam) * roll(x, shift=1, axis=0)
    loss = distillation_loss(teacher(x), student(x))
    ```

    The draws come from `keras.random` with a `SeedGenerator`, so the step
    has no Python side effects; the Beta draw is by inverse CDF
    (`larger_beta_share`), so the step compiles with `jit_compile=True`.
    Because every batch is new, the teacher's outputs are never cached
    (`changes_batches` is `True`). Integer inputs (e.g. `uint8` images) are
    cast to floats to be mixed. Evaluation uses the inputs as they are, and
    reports the student's metrics against the labels when given.

    Args:
        teacher: The trained `keras.Model`, frozen.
        student: The `keras.Model` to train, with the teacher's output
            shape.
        augmentation: A Keras layer (or callable) applied to each training
            batch before mixup, e.g. a `keras.Sequential` of
            `keras.layers.RandomFlip` and `keras.layers.RandomCrop`. Layers
            are called with `training=True`. Defaults to `None`, no
            augmentation.
        mixup_alpha: Concentration `alpha >= 0` of the `Beta(alpha, alpha)`
            mixup coefficient; `0` turns mixup off. The paper uses `1.0`.
            Defaults to `1.0`.
        temperature: Temperature `T > 0` of the default loss,
            `kd_keras.losses.KD(T)`; the paper uses the plain KL divergence,
            `T = 1`. Defaults to `1.0`.
        seed: Seed of the mixup draws. Defaults to `None`, from Keras'
            global seed (`keras.utils.set_random_seed`).
        distillation_loss: A `kd_keras.losses` loss, or a list of them, as
            for `kd_keras.Distiller`. Defaults to `None`,
            `kd_keras.losses.KD(temperature)`.
        **kwargs: Passed to `kd_keras.Distiller` (`name`, ...). `alpha`
            has no effect: no labels reach the loss.

    Example:

    ```python
    augmentation = keras.Sequential(
        [keras.layers.RandomFlip("horizontal"), keras.layers.RandomCrop(28, 28)]
    )
    distiller = kd_keras.FunctionMatching(teacher, student, augmentation)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(x_train, epochs=100, validation_data=(x_val, y_val))
    ```

    References:
        - [Beyer et al., 2022, Knowledge distillation: A good teacher is
          patient and consistent](https://arxiv.org/abs/2106.05237)
        - [Zhang et al., 2018, mixup](https://arxiv.org/abs/1710.09412)
    """

    def __init__(
        self,
        teacher,
        student,
        augmentation=None,
        mixup_alpha=1.0,
        temperature=_DEFAULT_TEMPERATURE,
        seed=None,
        distillation_loss=None,
        **kwargs,
    ):
        if augmentation is not None and not callable(augmentation):
            raise TypeError(
                "augmentation must be a keras layer or a callable. "
                f"Received: augmentation={augmentation!r}"
            )
        mixup_alpha = check_non_negative("mixup_alpha", mixup_alpha)
        explicit = temperature is not _DEFAULT_TEMPERATURE
        temperature = check_temperature(temperature)
        if distillation_loss is None:
            distillation_loss = kd_losses.KD(temperature=temperature)
        elif explicit:
            # The Distiller checks it against the loss's own temperature.
            kwargs["temperature"] = temperature
        super().__init__(
            teacher, student, distillation_loss=distillation_loss, **kwargs
        )
        self.augmentation = augmentation
        self.mixup_alpha = mixup_alpha
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def mixup(self, x):
        """Mixes each example of `x` with the next, one coefficient per batch.

        Args:
            x: A batch (a tensor or a structure of tensors).

        Returns:
            The mixed batch, floating point.
        """
        lam = larger_beta_share(
            self.mixup_alpha,
            keras.random.uniform((), seed=self.seed_generator),
        )

        def mix(tensor):
            tensor = _as_float(tensor)
            weight = ops.cast(lam, tensor.dtype)
            return weight * tensor + (1.0 - weight) * ops.roll(
                tensor, 1, axis=0
            )

        return keras.tree.map_structure(mix, x)

    def prepare_batch(self, x, y):
        """Returns the augmented, mixed batch and no labels."""
        if isinstance(self.augmentation, keras.layers.Layer):
            x = self.augmentation(x, training=True)
        elif self.augmentation is not None:
            x = self.augmentation(x)
        if self.mixup_alpha > 0:
            x = self.mixup(x)
        return x, None

    def get_config(self):
        augmentation = self.augmentation
        return {
            **super().get_config(),
            "augmentation": (
                None
                if augmentation is None
                else keras.saving.serialize_keras_object(augmentation)
            ),
            "mixup_alpha": self.mixup_alpha,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("augmentation") is not None:
            config["augmentation"] = keras.saving.deserialize_keras_object(
                config["augmentation"]
            )
        return super().from_config(config)


__all__ = [
    "FunctionMatching",
]
