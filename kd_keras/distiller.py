"""The `Distiller`: a `keras.Model` that trains a student from a teacher."""

import collections

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kd_keras import finite
from kd_keras import losses as kd_losses
from kd_keras.hyperparameters import (
    DEFAULT_ALPHA,
    DEFAULT_TEMPERATURE,
    Default,
    Hyperparameter,
    check_non_negative,
    check_temperature,
    check_weight,
)
from kd_keras.labels import fill_unlabelled
from kd_keras.losses.keras_distillation import (
    as_distillation_loss,
    is_keras_style,
)
from kd_keras.metrics import TeacherAgreement
from kd_keras.saving import save_model
from kd_keras.teacher_outputs import TeacherCache, TeacherSource, TeacherStore
from kd_keras.teacher_outputs import cache as teacher_cache
from kd_keras.trainer import Batch, Trainer
from kd_keras.validation import check_models
from kd_keras.views import (
    ModelView,
    feature_shape,
    from_logits,
    output_activation,
    output_shape,
)

# Told apart from a temperature of 4 passed beside a loss with its own.
_DEFAULT_TEMPERATURE = Default(DEFAULT_TEMPERATURE)
# Told apart from an alpha passed beside keras.distillation's words.
_DEFAULT_ALPHA = Default(DEFAULT_ALPHA)
# keras.distillation.Distiller's default `student_loss_weight`.
KERAS_STUDENT_LOSS_WEIGHT = 0.5

Losses = collections.namedtuple(
    "Losses", ["total", "student", "distillation", "terms"]
)
Losses.__doc__ = """The losses of one batch.

`total` is what is minimised, `student` the hard-label loss,
`distillation` the weighted sum of the distillation losses, `terms` each
one's weighted value.
"""


def _listed(distillation_loss):
    if isinstance(distillation_loss, (list, tuple)):
        return list(distillation_loss)
    return [distillation_loss]


def _both(ours, value, theirs, given):
    return ValueError(
        f"{ours} and {theirs} are one setting, in kd_keras' and in "
        f"keras.distillation's words: pass one. Received: {ours}={value!r}, "
        f"{theirs}={given!r}"
    )


def _from_keras_words(
    distillation_loss, alpha, distillation_losses, student_loss_weight
):
    """`(distillation_loss, alpha, in_keras_words)` from the constructor's
    two vocabularies, kd_keras' and `keras.distillation`'s.

    Keras' words (`distillation_losses`, `student_loss_weight`, or one of
    its losses) take its default hard-label weight, 0.5.
    """
    keras_words = (
        distillation_losses is not None or student_loss_weight is not None
    )
    if distillation_losses is not None:
        if distillation_loss is not None:
            raise _both(
                "distillation_loss",
                distillation_loss,
                "distillation_losses",
                distillation_losses,
            )
        distillation_loss = distillation_losses
    if student_loss_weight is not None:
        if alpha is not _DEFAULT_ALPHA:
            raise _both(
                "alpha", alpha, "student_loss_weight", student_loss_weight
            )
        alpha = student_loss_weight
    if distillation_loss is not None:
        keras_words |= any(map(is_keras_style, _listed(distillation_loss)))
    if alpha is _DEFAULT_ALPHA and keras_words:
        alpha = KERAS_STUDENT_LOSS_WEIGHT
    return distillation_loss, alpha, keras_words


def _as_list(distillation_loss, weights):
    """`(losses, weights)` as lists of the same length."""
    losses = _listed(distillation_loss)
    if not losses:
        raise ValueError("distillation_loss must not be an empty list.")
    if weights is None:
        return losses, [1.0] * len(losses)
    if isinstance(weights, np.ndarray):
        weights = weights.ravel().tolist()
    elif not isinstance(weights, (list, tuple)):
        weights = [weights]
    if len(weights) != len(losses):
        raise ValueError(
            "distillation_loss_weights must have one weight per loss. "
            f"Received: {len(weights)} weights for {len(losses)} losses."
        )
    return losses, [
        check_non_negative("distillation_loss_weights", w) for w in weights
    ]


@keras.saving.register_keras_serializable(package="kd_keras")
class Distiller(Trainer):
    """Trains a student model to reproduce a frozen teacher.

    `train_step` runs the teacher (`training=False`, outside the gradient
    tape) and the student (`training=True`, under the tape), and minimises

    ```python
    loss = alpha * student_loss + (1 - alpha) * distillation_loss
    distillation_loss = sum(w_i * loss_i(teacher, student))
    ```

    plus the student's regularization losses. `student_loss` compares the
    student with the labels; each distillation loss compares it with the
    teacher: their outputs (as logits), or the outputs of the layers it
    names (feature losses such as `kd_keras.losses.FitNet`, whose adapter
    is trained with the student and never saved into it). Losses that need
    the labels (`kd_keras.losses.DKD`) get them. Without labels (`y` is
    `None`) the loss is the distillation loss alone; a class index of -1
    (`kd_keras.labels.UNLABELLED`) marks one unlabelled sample, whose
    hard-label loss and metrics are masked (`kd_keras.labels`).

    The teacher's outputs are computed once and reused every epoch when
    the inputs are in memory (numpy arrays or tensors), see `cache`.

    The losses read teachers and students that end in a softmax or a
    sigmoid through the logits the activation was applied to
    (`kd_keras.views`). Losses are computed in float32. `alpha` and the
    losses' temperatures live in variables (`alpha_variable`), so changing
    them (`kd_keras.callbacks`) never retraces the step.

    `fit`, `evaluate` and their logs report `loss`, `student_loss`,
    `distillation_loss` (and each weighted term, by the loss's name, when
    there are several), the compiled metrics of the student and
    `teacher_agreement` (share of samples where the student's top-1 class
    is the teacher's). Calling the distiller returns the student's output.

    It takes `keras.distillation.Distiller`'s words as well, with Keras'
    meanings and defaults: `distillation_losses` for `distillation_loss`,
    `student_loss_weight` for `alpha`, and `keras.distillation`'s losses
    (`kd_keras.losses.LogitsDistillation` and `FeatureDistillation`, Keras'
    own, or a `keras.distillation.DistillationLoss` of your own), which
    read the models' outputs as they return them. Called in those words
    (one of the two keywords, or one of those losses), the hard-label
    weight defaults to Keras' 0.5 and the logs add `total_loss` (equal to
    `loss`). See `docs/from_keras_distillation.md`.

    Args:
        teacher: The trained `keras.Model`. It is frozen
            (`teacher.trainable = False`) and its weights never change.
        student: The `keras.Model` to train, with the teacher's output
            shape.
        distillation_loss: A `kd_keras.losses` loss called as
            `loss(teacher, student)`, e.g. `kd_keras.losses.KD(2.0)`, a
            `keras.distillation.DistillationLoss`, or a list of them to
            combine. Defaults to `None`, Hinton KD:
            `kd_keras.losses.KD(temperature)`.
        alpha: Weight of the hard-label loss, in [0, 1]. `lambda_param` of
            `kd_keras.distillation_loss` is `1 - alpha`. Defaults to `0.1`
            (0.5 in Keras' words).
        temperature: Softening temperature of the default loss `T > 0`. A
            loss passed as `distillation_loss` keeps its own temperature.
            Defaults to `4.0`.
        distillation_loss_weights: Weights `w_i >= 0` of the distillation
            losses, one per loss. Defaults to `None`, all `1.0`.
        cache: When to compute the teacher's outputs once per `fit` instead
            of at every step. `"auto"`: for inputs in memory (numpy arrays,
            dense tensors) whose cached features would take at most 1 GiB,
            never for datasets or generators. `True`: also for a
            finite `tf.data.Dataset` whose inputs are the same on every
            pass (samples are keyed by their bytes, so shuffling is fine);
            a random pipeline raises a `ValueError`. A
            `kd_keras.TeacherCache` is `True` with its storage (float16,
            top-k logits). `False`: run the teacher at every step. A
            `kd_keras.TeacherStore`: `fit(x, y)` on the data it was built
            from reads the teacher's outputs from it (any `cache` trains
            from `fit(store)`). Subclasses whose `prepare_batch` changes
            the batches (`changes_batches`) never cache. Defaults to `"auto"`.
        distillation_losses: `keras.distillation`'s name for
            `distillation_loss`. Defaults to `None`.
        student_loss_weight: `keras.distillation`'s name for `alpha`.
            Defaults to `None`.
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

    @property
    def changes_batches(self):
        """Whether `prepare_batch` changes each batch before the teacher
        sees it: then the teacher's outputs are never cached. `True` for a
        subclass that overrides `prepare_batch`."""
        return type(self).prepare_batch is not Distiller.prepare_batch

    def __init__(
        self,
        teacher,
        student,
        distillation_loss=None,
        alpha=_DEFAULT_ALPHA,
        temperature=_DEFAULT_TEMPERATURE,
        distillation_loss_weights=None,
        cache="auto",
        *,
        distillation_losses=None,
        student_loss_weight=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        output_shape = check_models(teacher, student)
        self.teacher = teacher
        self.student = student
        self.teacher.trainable = False
        distillation_loss, alpha, self._keras_words = _from_keras_words(
            distillation_loss, alpha, distillation_losses, student_loss_weight
        )
        self.alpha = alpha
        if distillation_loss is None:
            distillation_loss = kd_losses.KD(
                temperature=check_temperature(temperature)
            )
        self._set_distillation_losses(
            distillation_loss,
            distillation_loss_weights,
            temperature,
            output_shape,
            cache,
        )
        self._is_classifier = output_shape is None or output_shape[-1] > 1
        self._teacher_activation = output_activation(teacher)
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(
            name="distillation_loss"
        )
        # keras.distillation logs `loss` as `total_loss` too.
        self.total_loss_tracker = (
            keras.metrics.Mean(name="total_loss") if self._keras_words else None
        )
        if self._is_classifier:
            self.teacher_agreement = TeacherAgreement()
        # Built models need no build step; saving and `compile_from_config`
        # then see the distiller as built.
        self.built = teacher.built and student.built

    @property
    def alpha_variable(self):
        """The variable holding `alpha`, which the compiled step reads."""
        return self._alpha

    @property
    def student_loss_weight(self):
        """`keras.distillation`'s name for `alpha`."""
        return self.alpha

    @student_loss_weight.setter
    def student_loss_weight(self, value):
        self.alpha = value

    @property
    def distillation_losses(self):
        """The distillation losses as given, in a list."""
        return _listed(self.distillation_loss)

    @property
    def _distillation_losses(self):
        """The losses as the step computes them (`as_distillation_loss`)."""
        return self._computed_losses

    @property
    def data_model(self):
        return self.student

    @property
    def hooked_losses(self):
        return self._distillation_losses

    def _set_distillation_losses(
        self, distillation_loss, weights, temperature, output_shape, cache
    ):
        """Checks and sets the losses, their weights, the student's view,
        the adapters, the trackers and where the teacher's outputs come
        from (`cache`)."""
        given, weights = _as_list(distillation_loss, weights)
        losses = [as_distillation_loss(loss) for loss in given]
        for loss in losses:
            self._check_distillation_loss(loss, temperature, output_shape)
        for loss in filter(is_keras_style, given):
            loss.validate_model_compatibility(self.teacher, self.student)
        self.distillation_loss = distillation_loss
        self._computed_losses = losses
        self.distillation_loss_weights = weights
        self._student_layers = list(
            dict.fromkeys(
                loss.student_layer
                for loss in losses
                if loss.student_layer is not None
            )
        )
        self._student_view = ModelView(
            self.student, self._student_layers, "student"
        )
        self.adapters = [self._make_adapter(loss) for loss in losses]
        self._term_trackers = self._make_term_trackers()
        self.cache = cache

    @property
    def cache(self):
        """Where the teacher's outputs come from: `"auto"`, `None` (online),
        a `TeacherCache` or a `TeacherStore` (see the class docstring)."""
        return self._source.cache

    @cache.setter
    def cache(self, cache):
        self._source = TeacherSource(
            self.teacher,
            cache,
            self._distillation_losses,
            type(self).__name__ if self.changes_batches else None,
        )

    def _check_distillation_loss(self, loss, temperature, output_shape):
        own = getattr(loss, "temperature", None)
        if (
            own is not None
            and temperature is not _DEFAULT_TEMPERATURE
            and check_temperature(temperature) != own
        ):
            raise ValueError(
                f"temperature={temperature} conflicts with the temperature "
                f"of distillation_loss ({own}). Set it on one of them."
            )
        if not loss.softmax_based:
            return
        if output_shape is not None and output_shape[-1] < 2:
            raise ValueError(
                f"{type(loss).__name__} compares softmax distributions, but "
                f"the models have a single output {output_shape}. For "
                "regression use kd_keras.losses.LogitMSE()."
            )
        if "sigmoid" in (
            output_activation(self.teacher),
            output_activation(self.student),
        ):
            raise ValueError(
                f"{type(loss).__name__} compares softmax distributions, but "
                "the teacher or student ends in a sigmoid (independent "
                "probabilities). Remove the sigmoid so the model returns "
                "logits, or use kd_keras.losses.LogitMSE()."
            )

    def _make_adapter(self, loss):
        """The built adapter of a feature loss, or `None`."""
        if not (loss.teacher_layer or loss.student_layer):
            return None
        student_shape = feature_shape(
            self.student, loss.student_layer, "student"
        )
        adapter = loss.make_adapter(
            feature_shape(self.teacher, loss.teacher_layer, "teacher"),
            student_shape,
        )
        if adapter is not None and not adapter.built:
            adapter.build((None, *student_shape))
        return adapter

    def _make_term_trackers(self):
        if len(self._distillation_losses) < 2:
            return []
        names = [loss.name for loss in self._distillation_losses]
        return [
            keras.metrics.Mean(
                name=name if names.count(name) == 1 else f"{name}_{i}"
            )
            for i, name in enumerate(names)
        ]

    @property
    def temperature(self):
        """Temperature of the distillation losses (`None` if none has one).

        Setting it sets every distillation loss that has a temperature.
        """
        for loss in self._distillation_losses:
            if hasattr(loss, "temperature"):
                return loss.temperature
        return None

    @temperature.setter
    def temperature(self, value):
        tempered = [
            loss
            for loss in self._distillation_losses
            if hasattr(loss, "temperature")
        ]
        if not tempered:
            raise ValueError(
                "None of the distillation losses has a temperature: "
                f"{[type(loss).__name__ for loss in self._distillation_losses]}"
            )
        value = check_temperature(value)
        for loss in tempered:
            loss.temperature = value

    def call(self, inputs, training=None):
        inputs, _ = teacher_cache.unpack(inputs)
        return self.student(inputs, training=training)

    def compile(
        self,
        optimizer="adam",
        loss=None,
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha=None,
        temperature=None,
        **kwargs,
    ):
        """Configures the distiller for training.

        Accepts Keras' `compile` arguments, as `keras.distillation.
        Distiller.compile` does, and the keras.io example's keywords, with
        the keras.io meaning.

        Args:
            optimizer: Optimizer of the student. Defaults to `"adam"`, as
                `keras.distillation.Distiller.compile`.
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
                `kd_keras.losses` loss is used as it is. It replaces the
                distillation losses. Defaults to `None`, keeping them.
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
            self._replace_distillation_loss(distillation_loss_fn, temperature)
        if temperature is not None:
            self.temperature = temperature
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def _replace_distillation_loss(self, loss, temperature):
        if not isinstance(loss, kd_losses.DistillationLoss):
            loss = kd_losses.SoftenedLoss(
                keras.losses.get(loss),
                temperature=temperature or self.temperature or 1.0,
            )
        self._set_distillation_losses(
            loss,
            None,
            _DEFAULT_TEMPERATURE,
            output_shape(self.student),
            self.cache,
        )

    def teacher_outputs(self, x):
        """`[logits, *features]` of the teacher on `x`, as the losses read.

        The logits are float32 (the logits a final softmax or sigmoid was
        applied to); the features are the outputs of the layers the losses
        name.
        """
        return self._source.run(x)

    def _step_losses(self, y, student, teacher, sample_weight, training):
        """The `Losses` of one batch; `student` is its `views.Outputs`."""
        student_views = dict(
            zip(
                [None, *self._student_layers],
                [student.logits, *student.features],
                strict=True,
            )
        )
        teacher_views = dict(
            zip(
                [None, *self.teacher_layers],
                [teacher.logits, *teacher.features],
                strict=True,
            )
        )
        terms = []
        for loss, weight, adapter in zip(
            self._distillation_losses,
            self.distillation_loss_weights,
            self.adapters,
            strict=True,
        ):
            s = student_views[loss.student_layer]
            t = teacher_views[loss.teacher_layer]
            if loss.reads_outputs and loss.student_layer is None:
                s = ops.cast(student.output, "float32")
            if loss.reads_outputs and loss.teacher_layer is None:
                t = from_logits(t, self._teacher_activation)
            if adapter is not None:
                s = adapter(s, training=training)
            labels = (
                {"labels": fill_unlabelled(y, teacher.logits)}
                if loss.requires_labels
                else {}
            )
            value = loss(
                t,
                s,
                sample_weight=sample_weight,
                **labels,
            )
            terms.append(weight * ops.cast(value, "float32"))
        distillation = ops.sum(ops.stack(terms)) if len(terms) > 1 else terms[0]
        if y is None:
            hard = ops.zeros((), "float32")
            total = distillation
        else:
            hard = self.hard_label_loss(
                y, student.output, self._student_view.activation, sample_weight
            )
            alpha = self.alpha_variable
            total = alpha * hard + (1.0 - alpha) * distillation
        total = total + self.regularization(self.student)
        return Losses(total, hard, distillation, terms)

    def _logs(self, x, y, student, teacher, sample_weight, losses):
        """Updates the trackers and metrics with a batch; returns the logs."""
        values = [
            (self.loss_tracker, losses.total),
            (self.student_loss_tracker, losses.student),
            (self.distillation_loss_tracker, losses.distillation),
            *zip(self._term_trackers, losses.terms, strict=False),
        ]
        if self.total_loss_tracker is not None:
            values.append((self.total_loss_tracker, losses.total))
        self.update_trackers(x, values)
        if self._is_classifier:
            self.teacher_agreement.update_state(
                teacher.logits, student.output, sample_weight=sample_weight
            )
        if y is None:
            return self.get_metrics_result()
        return self.compute_metrics(x, y, student.output, sample_weight)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the compiled metrics; returns the logs.

        As `keras.Model.compute_metrics`, except that unlabelled samples
        (class `kd_keras.labels.UNLABELLED`) are left out of every metric.
        """
        return self.update_metrics(x, y, y_pred, sample_weight, y_pred)

    def prepare_batch(self, x, y):
        """Returns the `(x, y)` a training step uses; `(x, y)` by default.

        Subclasses change a batch that teacher and student then both see
        (function matching's augmentation, for example): the teacher's
        outputs are then never cached (`changes_batches`).
        """
        return x, y

    def _trained_variables(self):
        # Read after the student's call: an unbuilt student creates its
        # weights there.
        return self.student.trainable_variables + [
            v
            for adapter in self.adapters
            if adapter is not None
            for v in adapter.trainable_variables
        ]

    def train_step(self, data):
        batch = Batch(*keras.utils.unpack_x_y_sample_weight(data))
        x, stored = teacher_cache.unpack(batch.x)
        batch = batch._replace(x=x)
        y = finite.zero_non_finite(batch.y)
        if stored is None and self.changes_batches:
            x, y = self.prepare_batch(x, y)
        teacher = self._source.outputs(x, stored)
        with tf.GradientTape() as tape:
            student = self._student_view(x, training=True)
            losses = self._step_losses(
                y, student, teacher, batch.sample_weight, training=True
            )
            scaled = self.optimizer.scale_loss(losses.total)
        reported = self.apply_update(
            tape, scaled, losses.total, self._trained_variables(), batch
        )
        return self._logs(
            x,
            y,
            student,
            teacher,
            batch.sample_weight,
            losses._replace(total=reported),
        )

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, stored = teacher_cache.unpack(x)
        teacher = self._source.outputs(x, stored)
        student = self._student_view(x, training=False)
        losses = self._step_losses(y, student, teacher, sample_weight, False)
        return self._logs(x, y, student, teacher, sample_weight, losses)

    @property
    def teacher_layers(self):
        """Names of the teacher layers whose outputs the losses read,
        besides its logits, in the order they are cached."""
        return self._source.teacher_layers

    @property
    def teacher_cache_nbytes(self):
        """Bytes of the teacher's outputs the last `fit` cached in memory,
        or `None` when it cached none."""
        return self._source.nbytes

    def check_data(self, names, data):
        """As `Trainer.check_data`; the inputs of `x` packed with the
        teacher's outputs (`with_teacher_outputs`) are checked, and a
        `TeacherStore`, checked when it was built, is not read."""
        x, *rest = data
        if not isinstance(x, TeacherStore):
            super().check_data(names, (teacher_cache.unpack(x)[0], *rest))

    def with_teacher_outputs(self, x, batch_size=32, verbose=1):
        """`x` with the teacher's outputs on it, computed now, once.

        `fit` and `evaluate` of this Distiller, or of any other Distiller
        of the same teacher whose losses read the same `teacher_layers`,
        take the result as `x` (or `validation_data[0]`) and train from
        the outputs it carries without running the teacher: a sweep over
        settings or seeds, or a tuning search (`kd_keras.tune`), pays for
        the teacher once. Stored as `cache` says (`TeacherCache()` when
        `cache` is `"auto"` or `False`).

        Args:
            x: The inputs: numpy arrays or tensors.
            batch_size: The training batch size; the teacher runs larger
                batches. Defaults to `32`.
            verbose: Whether to show a progress bar. Defaults to `1`.

        Returns:
            The inputs and the teacher's outputs, packed in a dict.

        Example:

        ```python
        packed = distiller.with_teacher_outputs(x_train)
        for alpha in (0.1, 0.5):
            d = kd_keras.Distiller(teacher, new_student(), alpha=alpha)
            d.compile("adam", metrics=["accuracy"])
            d.fit(packed, y_train, epochs=10)  # the teacher does not run
        ```
        """
        return self._source.attach(x, batch_size, verbose)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Evaluates; see `keras.Model.evaluate`. `x` may carry the
        teacher's outputs (`with_teacher_outputs`) or be a `TeacherStore`."""
        x = self._source.evaluate_data(x, kwargs.get("batch_size") or 32)
        return super().evaluate(x, y, *args, **kwargs)

    def prepare_fit_data(
        self, x, y, validation_data, batch_size, shuffle, verbose
    ):
        """Where the teacher's outputs come from for this `fit`: see
        `TeacherSource.fit_data`."""
        return self._source.fit_data(
            x, y, validation_data, batch_size, shuffle, verbose
        )

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
        return save_model(self.student, path, overwrite=overwrite)

    def get_config(self):
        # A store is data, like `x`: it is not saved with the Distiller.
        cache = "auto" if isinstance(self.cache, TeacherStore) else self.cache
        if isinstance(cache, TeacherCache):
            cache = keras.saving.serialize_keras_object(cache)
        serialize = keras.saving.serialize_keras_object
        config = {
            **super().get_config(),
            "teacher": serialize(self.teacher),
            "student": serialize(self.student),
            "distillation_loss_weights": self.distillation_loss_weights,
            "cache": False if cache is None else cache,
        }
        if self._keras_words:
            # As keras.distillation.Distiller's config, which it loads.
            return {
                **config,
                "distillation_losses": serialize(self.distillation_losses),
                "student_loss_weight": self.alpha,
            }
        return {
            **config,
            "distillation_loss": serialize(self.distillation_loss),
            "alpha": self.alpha,
            "temperature": self.temperature or float(_DEFAULT_TEMPERATURE),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # The losses carry their own temperatures, which may differ.
        config.pop("temperature", None)
        for key in (
            "teacher",
            "student",
            "distillation_loss",
            "distillation_losses",
        ):
            if key in config:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        if isinstance(config.get("cache"), dict):
            config["cache"] = keras.saving.deserialize_keras_object(
                config["cache"]
            )
        return cls(**config)
