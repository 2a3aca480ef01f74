"""Deep mutual learning: a cohort of students that teach each other."""

import keras
import tensorflow as tf
from keras import ops

from kd_keras import finite
from kd_keras import losses as kd_losses
from kd_keras.hyperparameters import check_temperature
from kd_keras.saving import save_model
from kd_keras.trainer import Batch, Trainer
from kd_keras.validation import check_students
from kd_keras.views import ModelView


def _copy_metric(metric):
    """A metric object per student: one object would mix their states."""
    if isinstance(metric, keras.metrics.Metric):
        return type(metric).from_config(metric.get_config())
    return metric


@keras.saving.register_keras_serializable(package="kd_keras")
class MutualLearning(Trainer):
    """Deep mutual learning: students trained together, each one's peers.

    There is no teacher. Every student learns from the labels and from the
    other students' predictions on the same batch:

    ```python
    loss_i = label_loss(y, s_i)
             + mean_{j != i} T**2 * KL(softmax(s_j / T) || softmax(s_i / T))
    ```

    with the peers' probabilities held constant (`stop_gradient`) in
    student `i`'s loss. At `T = 1` (the default) this is the loss of Zhang
    et al. The step minimises the sum of the students' losses; as each
    student's weights appear only in its own loss (the peer terms are
    constants), each student receives the gradient of its own loss.

    Zhang et al. update the students in turn: student 1 takes a step, the
    predictions are recomputed, then student 2 takes a step against the
    updated student 1, and so on. Here all students take their step at once
    from predictions of the same forward pass: one traced (and
    XLA-compilable) step with a single forward pass per student and one
    optimizer update, instead of `K` sequential steps with `K` recomputed
    forward passes. The difference is that student `i` learns from its
    peers' predictions before, not after, their update of this step. One
    optimizer holds every student's variables; per-variable optimizers
    (SGD, Adam, ...) treat them as separate students would, but global
    clipping (`global_clipnorm`) would clip them together.

    `fit` and `evaluate` report `loss` (the sum), `<name>_loss` for each
    student and each compiled metric per student as `<name>_<metric>`,
    e.g. `student_a_accuracy`. Labels are required. Calling the model
    returns the first student's output, so `predict` and the `Distiller`
    conventions apply to `students[0]`; reach the others through
    `students` or `save_student`.

    Args:
        students: A list of two or more `keras.Model`s with distinct names
            and one output of the same shape (softmax or logits, two or more
            classes).
        temperature: Softening temperature `T > 0` of the peer terms.
            Defaults to `1.0`.
        **kwargs: Passed to `keras.Model` (`name`, `dtype`, ...).

    Example:

    ```python
    cohort = kd_keras.MutualLearning([small_a, small_b])
    cohort.compile(optimizer="adam", metrics=["accuracy"])
    cohort.fit(x_train, y_train, epochs=5)   # small_a_accuracy, ...
    cohort.save_student(1, "small_b.keras")
    ```

    References:
        - [Zhang et al., 2018, Deep Mutual Learning](
          https://arxiv.org/abs/1706.00384)
    """

    def __init__(self, students, temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        check_students(students)
        self.students = list(students)
        # Keras tracks the students (and saves them) through `students`.
        self._student_views = [ModelView(s, [], "student") for s in students]
        self.distillation_loss = kd_losses.KD(
            temperature=check_temperature(temperature)
        )
        self.student_loss_trackers = [
            keras.metrics.Mean(name=f"{student.name}_loss")
            for student in students
        ]
        self.built = all(student.built for student in students)

    @property
    def temperature(self):
        """Temperature of the peer terms."""
        return self.distillation_loss.temperature

    @temperature.setter
    def temperature(self, value):
        self.distillation_loss.temperature = check_temperature(value)

    def build(self, input_shape):
        for student in self.students:
            if not student.built:
                student.build(input_shape)

    def call(self, inputs, training=None):
        return self.students[0](inputs, training=training)

    def _per_student(self, metrics, argument):
        if metrics is None:
            return None
        names = [student.name for student in self.students]
        if isinstance(metrics, dict):
            unknown = set(metrics) - set(names)
            if unknown:
                raise ValueError(
                    f"{argument} given as a dict must be keyed by student "
                    f"names {names}. Received keys: {sorted(unknown)}"
                )
            return metrics
        if not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        return {name: [_copy_metric(m) for m in metrics] for name in names}

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        metrics=None,
        weighted_metrics=None,
        **kwargs,
    ):
        """Configures the cohort for training.

        Args:
            optimizer: One optimizer for all students. Defaults to
                `"rmsprop"`.
            loss: Hard-label loss of every student, any Keras loss.
                Defaults to `None`: sparse categorical cross-entropy for
                integer labels, categorical cross-entropy for one-hot labels
                (from logits, unless a student ends in a softmax).
            metrics: Metrics computed for every student (each gets its own
                copy), or a dict from student name to its metrics. Defaults
                to `None`.
            weighted_metrics: As `metrics`, weighted by `sample_weight`.
                Defaults to `None`.
            **kwargs: Passed to `keras.Model.compile`.
        """
        self.student_loss_fn = None if loss is None else keras.losses.get(loss)
        super().compile(
            optimizer=optimizer,
            metrics=self._per_student(metrics, "metrics"),
            weighted_metrics=self._per_student(
                weighted_metrics, "weighted_metrics"
            ),
            **kwargs,
        )

    @property
    def data_model(self):
        return self.students[0]

    def _cohort_losses(self, y, outputs, sample_weight):
        """The loss of each student on one batch.

        Args:
            y: The labels.
            outputs: Each student's `views.Outputs`.
            sample_weight: The sample weights, or `None`.
        """
        peers = [ops.stop_gradient(o.logits) for o in outputs]
        losses = []
        for i, (student, view, own) in enumerate(
            zip(self.students, self._student_views, outputs, strict=True)
        ):
            mimicry = sum(
                self.distillation_loss(
                    peer, own.logits, sample_weight=sample_weight
                )
                for j, peer in enumerate(peers)
                if j != i
            ) / (len(peers) - 1)
            hard = self.hard_label_loss(
                y, own.output, view.activation, sample_weight
            )
            losses.append(mimicry + hard + self.regularization(student))
        return losses

    @staticmethod
    def _require_labels(y):
        if y is None:
            raise ValueError(
                "MutualLearning trains on labels: pass y to fit and "
                "evaluate, or (x, y) batches."
            )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the metrics of every student.

        Args:
            x: The inputs.
            y: The labels.
            y_pred: The list of the students' outputs. Keras passes the
                first student's output (`call`) when it builds the metrics;
                the students' outputs are then computed here.
            sample_weight: Sample weights. Defaults to `None`.

        Returns:
            The logs: `loss`, each student's loss and metrics. Unlabelled
            samples (class `kd_keras.labels.UNLABELLED`) are left out of
            every metric.
        """
        self._require_labels(y)
        if not isinstance(y_pred, (list, tuple)):
            y_pred = [s(x, training=False) for s in self.students]
        names = [student.name for student in self.students]
        return self.update_metrics(
            x,
            y,
            dict(zip(names, y_pred, strict=True)),
            sample_weight,
            outputs=y_pred[0],
        )

    def _outputs(self, x, training):
        return [view(x, training=training) for view in self._student_views]

    def _logs(self, x, y, outputs, sample_weight, losses, total):
        """Updates the trackers and metrics with a batch; returns the logs."""
        self.update_trackers(
            x,
            [
                (self.loss_tracker, total),
                *zip(self.student_loss_trackers, losses, strict=True),
            ],
        )
        return self.compute_metrics(
            x, y, [o.output for o in outputs], sample_weight
        )

    def train_step(self, data):
        batch = Batch(*keras.utils.unpack_x_y_sample_weight(data))
        self._require_labels(batch.y)
        y = finite.zero_non_finite(batch.y)
        with tf.GradientTape() as tape:
            outputs = self._outputs(batch.x, training=True)
            losses = self._cohort_losses(y, outputs, batch.sample_weight)
            total = sum(losses)
            scaled = self.optimizer.scale_loss(total)
        reported = self.apply_update(
            tape, scaled, total, self.trainable_variables, batch
        )
        return self._logs(
            batch.x, y, outputs, batch.sample_weight, losses, reported
        )

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._require_labels(y)
        outputs = self._outputs(x, training=False)
        losses = self._cohort_losses(y, outputs, sample_weight)
        return self._logs(x, y, outputs, sample_weight, losses, sum(losses))

    def save_student(self, index, path, overwrite=False):
        """Saves one student alone, as a plain Keras model.

        Args:
            index: Position of the student in `students`.
            path: Destination ending in `.h5`, `.hdf5` or `.keras`.
            overwrite: Whether an existing file may be replaced. Defaults to
                `False`.

        Returns:
            The `Path` written.
        """
        count = len(self.students)
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(
                f"index must be an integer. Received: index={index!r}"
            )
        if not -count <= index < count:
            raise ValueError(
                f"index must be in [0, {count}). Received: index={index}"
            )
        return save_model(self.students[index], path, overwrite=overwrite)

    def get_config(self):
        return {
            **super().get_config(),
            "students": [
                keras.saving.serialize_keras_object(student)
                for student in self.students
            ],
            "temperature": self.temperature,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["students"] = [
            keras.saving.deserialize_keras_object(student)
            for student in config["students"]
        ]
        return cls(**config)


__all__ = [
    "MutualLearning",
]
