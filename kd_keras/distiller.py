"""The `Distiller`: a `keras.Model` that trains a student from a teacher."""

import inspect

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kd_keras import losses as kd_losses
from kd_keras import saving
from kd_keras.hyperparameters import (
    Hyperparameter,
    check_temperature,
    check_weight,
)
from kd_keras.metrics import TeacherAgreement
from kd_keras.outputs import output_activation, to_logits

_DEFAULT_TEMPERATURE = 4.0


def _output_shape(model):
    outputs = getattr(model, "outputs", None)
    if not outputs:
        return None
    if len(outputs) > 1:
        raise ValueError(
            "The Distiller takes models with one output. "
            f"Received: {model.name!r} with {len(outputs)} outputs."
        )
    return tuple(outputs[0].shape[1:])


def _check_model(name, model):
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"{name} must be a keras.Model. "
            f"Received: {name}={model!r} of type {type(model).__name__}"
        )


def _check_models(teacher, student):
    _check_model("teacher", teacher)
    _check_model("student", student)
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
        _output_shape(teacher),
        _output_shape(student),
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


def _replica_count():
    return tf.distribute.get_strategy().num_replicas_in_sync


@keras.saving.register_keras_serializable(package="kd_keras")
class Distiller(keras.Model):
    """Trains a student model to reproduce a frozen teacher.

    `train_step` runs the teacher (`training=False`, outside the gradient
    tape) and the student (`training=True`, under the tape), and minimises

    ```python
    loss = alpha * student_loss + (1 - alpha) * distillation_loss
    ```

    plus the student's regularization losses. `student_loss` compares the
    student with the labels; `distillation_loss` compares it with the
    teacher, `loss(teacher_logits, student_logits)`. Without labels (`y` is
    `None`) the loss is the distillation loss alone.

    Teachers and students whose output layer is a softmax are read as
    log-probabilities, which are valid logits, so the soft targets are
    right whichever the model returns. Losses are computed in float32.

    `fit`, `evaluate` and their logs report `loss`, `student_loss`,
    `distillation_loss`, the compiled metrics of the student and
    `teacher_agreement` (share of samples where the student's top-1 class
    is the teacher's). Calling the distiller returns the student's output.

    Args:
        teacher: The trained `keras.Model`. It is frozen
            (`teacher.trainable = False`) and its weights never change.
        student: The `keras.Model` to train, with the teacher's output
            shape.
        distillation_loss: A `keras.losses.Loss` called as
            `loss(teacher, student)`, e.g. `kd_keras.losses.KD(2.0)`.
            Defaults to `None`, Hinton KD: `kd_keras.losses.KD(temperature)`.
        alpha: Weight of the hard-label loss, in [0, 1]. `lambda_param` of
            `kd_keras.distillation_loss` is `1 - alpha`. Defaults to `0.1`.
        temperature: Softening temperature of the default loss `T > 0`. A
            loss passed as `distillation_loss` keeps its own temperature.
            Defaults to `4.0`.
        **kwargs: Passed to `keras.Model` (`name`, `dtype`, ...).

    Example:

    ```python
    distiller = kd_keras.Distiller(teacher, student, alpha=0.1)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(x_train, y_train, epochs=5)
    distiller.save_student("student.h5")
    ```

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
        - [keras.io: Knowledge Distillation](
          https://keras.io/examples/vision/knowledge_distillation/)
    """

    alpha = Hyperparameter(check_weight)
    # Subclasses whose `prepare_batch` is random set this, so the teacher's
    # outputs are never cached.
    random_inputs = False

    def __init__(
        self,
        teacher,
        student,
        distillation_loss=None,
        alpha=0.1,
        temperature=_DEFAULT_TEMPERATURE,
        **kwargs,
    ):
        super().__init__(**kwargs)
        output_shape = _check_models(teacher, student)
        self.teacher = teacher
        self.student = student
        self.teacher.trainable = False
        self._teacher_activation = output_activation(teacher)
        self._student_activation = output_activation(student)
        self.alpha = alpha
        temperature = check_temperature(temperature)
        if distillation_loss is None:
            distillation_loss = kd_losses.KD(temperature=temperature)
        self.distillation_loss = self._checked_distillation_loss(
            distillation_loss, temperature, output_shape
        )
        self.student_loss_fn = None
        self._is_classifier = output_shape is None or output_shape[-1] > 1
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(
            name="distillation_loss"
        )
        if self._is_classifier:
            self.teacher_agreement = TeacherAgreement()
        # Built models need no build step; saving and `compile_from_config`
        # then see the distiller as built.
        self.built = teacher.built and student.built

    def _checked_distillation_loss(self, loss, temperature, output_shape):
        if not isinstance(loss, keras.losses.Loss):
            raise TypeError(
                "distillation_loss must be a keras.losses.Loss called as "
                "loss(teacher_outputs, student_outputs), such as "
                "kd_keras.losses.KD(temperature=2.0). "
                f"Received: distillation_loss={loss!r}"
            )
        own = getattr(loss, "temperature", None)
        if own is not None and temperature not in (own, _DEFAULT_TEMPERATURE):
            raise ValueError(
                f"temperature={temperature} conflicts with the temperature "
                f"of distillation_loss ({own}). Set it on one of them."
            )
        softmax_based = getattr(loss, "softmax_based", False)
        if softmax_based and output_shape is not None and output_shape[-1] < 2:
            raise ValueError(
                f"{type(loss).__name__} compares softmax distributions, but "
                f"the models have a single output {output_shape}. For "
                "regression use kd_keras.losses.LogitMSE()."
            )
        if softmax_based and "sigmoid" in (
            self._teacher_activation,
            self._student_activation,
        ):
            raise ValueError(
                f"{type(loss).__name__} compares softmax distributions, but "
                "the teacher or student ends in a sigmoid (independent "
                "probabilities). Remove the sigmoid so the model returns "
                "logits, or use kd_keras.losses.LogitMSE()."
            )
        return loss

    @property
    def temperature(self):
        """Temperature of the distillation loss (`None` if it has none)."""
        return getattr(self.distillation_loss, "temperature", None)

    @temperature.setter
    def temperature(self, value):
        if not hasattr(self.distillation_loss, "temperature"):
            raise ValueError(
                f"{type(self.distillation_loss).__name__} has no temperature."
            )
        self.distillation_loss.temperature = check_temperature(value)

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha=None,
        temperature=None,
        **kwargs,
    ):
        """Configures the distiller for training.

        Accepts Keras' `compile` arguments and the keras.io example's
        keywords, with the keras.io meaning.

        Args:
            optimizer: Optimizer of the student. Defaults to `"rmsprop"`.
            loss: Hard-label loss of the student, any Keras loss. Defaults
                to `None`: sparse categorical cross-entropy for integer
                labels, categorical cross-entropy for one-hot labels (both
                from logits, unless the student ends in a softmax) and mean
                squared error for single-output models.
            metrics: Metrics of the student against the labels. Defaults to
                `None`.
            student_loss_fn: keras.io name of `loss`. Defaults to `None`.
            distillation_loss_fn: keras.io style: a Keras loss applied to
                `softmax(teacher / T)` and `softmax(student / T)` and scaled
                by `T**2` (see `kd_keras.losses.SoftenedLoss`). A
                `kd_keras.losses` loss is used as it is. Defaults to `None`,
                keeping the distiller's loss.
            alpha: New weight of the hard-label loss. Defaults to `None`,
                keeping the current one.
            temperature: New temperature. Defaults to `None`, keeping the
                current one.
            **kwargs: Passed to `keras.Model.compile`.
        """
        if loss is not None and student_loss_fn is not None:
            raise ValueError(
                "Pass the hard-label loss as loss or as student_loss_fn, "
                f"not both. Received: loss={loss!r}, "
                f"student_loss_fn={student_loss_fn!r}"
            )
        student_loss = loss if loss is not None else student_loss_fn
        self.student_loss_fn = (
            None if student_loss is None else keras.losses.get(student_loss)
        )
        if alpha is not None:
            self.alpha = alpha
        if distillation_loss_fn is not None:
            if not isinstance(distillation_loss_fn, kd_losses.DistillationLoss):
                distillation_loss_fn = kd_losses.SoftenedLoss(
                    keras.losses.get(distillation_loss_fn),
                    temperature=temperature or self.temperature or 1.0,
                )
            self.distillation_loss = self._checked_distillation_loss(
                distillation_loss_fn,
                _DEFAULT_TEMPERATURE,
                _output_shape(self.student),
            )
        if temperature is not None:
            self.temperature = temperature
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config and self.student_loss_fn is not None:
            config["loss"] = keras.saving.serialize_keras_object(
                self.student_loss_fn
            )
        return config

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def _student_loss(self, y, outputs, sample_weight):
        loss_fn = self.student_loss_fn
        if loss_fn is None:
            from_logits = self._student_activation != "softmax"
            if outputs.shape[-1] == 1:
                loss_fn = keras.losses.MeanSquaredError()
            elif len(y.shape) == len(outputs.shape) and (
                y.shape[-1] == outputs.shape[-1]
            ):
                loss_fn = keras.losses.CategoricalCrossentropy(
                    from_logits=from_logits
                )
            else:
                loss_fn = keras.losses.SparseCategoricalCrossentropy(
                    from_logits=from_logits
                )
        elif not isinstance(loss_fn, keras.losses.Loss):
            loss_fn = _PerSampleLoss(loss_fn)
        return ops.cast(loss_fn(y, outputs, sample_weight), "float32")

    def _loss_terms(self, y, student_outputs, teacher_outputs, sample_weight):
        """`(total, student_loss, distillation_loss)` of one batch.

        As in Keras, under a `tf.distribute` strategy each replica's terms
        are divided by the number of replicas (Keras losses do it for
        `"sum_over_batch_size"`), so that the gradients, summed over the
        replicas, are those of the loss averaged over the global batch.
        """
        distillation = self.distillation_loss(
            to_logits(teacher_outputs, self._teacher_activation),
            to_logits(student_outputs, self._student_activation),
            sample_weight=sample_weight,
        )
        if y is None:
            student = ops.zeros((), "float32")
            total = distillation
        else:
            student = self._student_loss(y, student_outputs, sample_weight)
            total = self._alpha * student + (1.0 - self._alpha) * distillation
        if self.student.losses:
            regularization = ops.cast(ops.sum(self.student.losses), "float32")
            total = total + regularization / _replica_count()
        return total, student, distillation

    def _report(
        self, x, y, student_outputs, teacher_outputs, sample_weight, losses
    ):
        batch_size = ops.shape(keras.tree.flatten(x)[0])[0]
        trackers = (
            self._loss_tracker,
            self.student_loss_tracker,
            self.distillation_loss_tracker,
        )
        for tracker, value in zip(trackers, losses, strict=True):
            tracker.update_state(
                value * _replica_count(), sample_weight=batch_size
            )
        if self._is_classifier:
            self.teacher_agreement.update_state(
                teacher_outputs, student_outputs, sample_weight=sample_weight
            )
        if y is None:
            return self.get_metrics_result()
        return self.compute_metrics(x, y, student_outputs, sample_weight)

    def get_metrics_result(self):
        # Without labels the compiled metrics are never built: leave them
        # out instead of failing.
        unbuilt = self._compile_metrics is not None and (
            not self._compile_metrics.built
        )
        if not unbuilt:
            return super().get_metrics_result()
        return {
            metric.name: metric.result()
            for metric in self.metrics
            if metric is not self._compile_metrics
        }

    def prepare_batch(self, x, y):
        """Returns the `(x, y)` a training step uses; `(x, y)` by default.

        Subclasses override it to augment a batch that teacher and student
        then both see (function matching, for example).
        """
        return x, y

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, y = self.prepare_batch(x, y)
        teacher_outputs = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_outputs = self.student(x, training=True)
            losses = self._loss_terms(
                y, student_outputs, teacher_outputs, sample_weight
            )
            scaled = self.optimizer.scale_loss(losses[0])
        # Read after the call: an unbuilt student creates its weights there.
        variables = self.student.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return self._report(
            x, y, student_outputs, teacher_outputs, sample_weight, losses
        )

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        teacher_outputs = self.teacher(x, training=False)
        student_outputs = self.student(x, training=False)
        losses = self._loss_terms(
            y, student_outputs, teacher_outputs, sample_weight
        )
        return self._report(
            x, y, student_outputs, teacher_outputs, sample_weight, losses
        )

    def _check_labels(self, y):
        """Integer labels outside [0, classes) fail here, not in the graph."""
        if not isinstance(y, np.ndarray) or not self._is_classifier:
            return
        classes = _output_shape(self.student)
        if classes is None or not np.issubdtype(y.dtype, np.integer):
            return
        if y.size and (y.min() < 0 or y.max() >= classes[-1]):
            raise ValueError(
                f"Labels must be in [0, {classes[-1]}) for a model with "
                f"{classes[-1]} classes. Received labels from {y.min()} to "
                f"{y.max()}."
            )

    def fit(self, *args, **kwargs):
        given = inspect.signature(super().fit).bind(*args, **kwargs).arguments
        self._check_labels(given.get("y"))
        validation = given.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) > 1:
            self._check_labels(validation[1])
        return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        given = inspect.signature(super().evaluate).bind(*args, **kwargs)
        self._check_labels(given.arguments.get("y"))
        return super().evaluate(*args, **kwargs)

    def save_student(self, path, overwrite=False):
        """Saves the student alone, as a plain Keras model.

        The file holds no teacher, adapter or distiller state; it loads with
        `keras.models.load_model` without importing kd_keras. The write is
        atomic.

        Args:
            path: Destination ending in `.h5`, `.hdf5` or `.keras`.
            overwrite: Whether an existing file may be replaced. Defaults to
                `False`.

        Returns:
            The `Path` written.
        """
        return saving.save_model(self.student, path, overwrite=overwrite)

    def get_config(self):
        return {
            **super().get_config(),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "student": keras.saving.serialize_keras_object(self.student),
            "distillation_loss": keras.saving.serialize_keras_object(
                self.distillation_loss
            ),
            "alpha": self.alpha,
            "temperature": self.temperature or _DEFAULT_TEMPERATURE,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("teacher", "student", "distillation_loss"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
