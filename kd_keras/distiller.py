"""The `Distiller`: a `keras.Model` that trains a student from a teacher."""

import collections
import functools

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kd_keras import cache as teacher_cache
from kd_keras import finite
from kd_keras import losses as kd_losses
from kd_keras.hyperparameters import (
    Default,
    Hyperparameter,
    check_non_negative,
    check_temperature,
    check_weight,
)
from kd_keras.labels import fill_unlabelled
from kd_keras.metrics import TeacherAgreement
from kd_keras.saving import save_model
from kd_keras.store import TeacherStore
from kd_keras.trainer import Batch, Trainer
from kd_keras.validation import check_models
from kd_keras.views import (
    ModelView,
    feature_shape,
    output_activation,
    output_shape,
)

# Told apart from a temperature of 4 passed beside a loss with its own.
_DEFAULT_TEMPERATURE = Default(4.0)
# Under cache="auto", features larger than this (float32) run online.
_AUTO_CACHE_BYTES = 2**30

Teacher = collections.namedtuple("Teacher", ["logits", "features"])
Teacher.__doc__ = "The teacher's float32 logits and named layers' outputs."
Losses = collections.namedtuple(
    "Losses", ["total", "student", "distillation", "terms"]
)
Losses.__doc__ = """The losses of one batch.

`total` is what is minimised, `student` the hard-label loss,
`distillation` the weighted sum of the distillation losses, `terms` each
one's weighted value.
"""


def _as_list(distillation_loss, weights):
    """`(losses, weights)` as lists of the same length."""
    many = isinstance(distillation_loss, (list, tuple))
    losses = list(distillation_loss) if many else [distillation_loss]
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


class _Views:
    """The teacher's and student's `ModelView`s.

    A plain holder, so Keras does not track the views: their layers are the
    teacher's and student's, tracked (and saved) once through them.
    """

    def __init__(self, teacher, student):
        self.teacher = teacher
        self.student = student


def _unique(names):
    return list(dict.fromkeys(name for name in names if name is not None))


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

    Args:
        teacher: The trained `keras.Model`. It is frozen
            (`teacher.trainable = False`) and its weights never change.
        student: The `keras.Model` to train, with the teacher's output
            shape.
        distillation_loss: A `kd_keras.losses` loss called as
            `loss(teacher, student)`, e.g. `kd_keras.losses.KD(2.0)`, or a
            list of them to combine. Defaults to `None`, Hinton KD:
            `kd_keras.losses.KD(temperature)`.
        alpha: Weight of the hard-label loss, in [0, 1]. `lambda_param` of
            `kd_keras.distillation_loss` is `1 - alpha`. Defaults to `0.1`.
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
        alpha=0.1,
        temperature=_DEFAULT_TEMPERATURE,
        distillation_loss_weights=None,
        cache="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        output_shape = check_models(teacher, student)
        self.teacher = teacher
        self.student = student
        self.teacher.trainable = False
        self.alpha = alpha
        self.cache = (
            cache
            if isinstance(cache, TeacherStore)
            else teacher_cache.check_cache(cache)
        )
        if distillation_loss is None:
            distillation_loss = kd_losses.KD(
                temperature=check_temperature(temperature)
            )
        self._set_distillation_losses(
            distillation_loss,
            distillation_loss_weights,
            temperature,
            output_shape,
        )
        self._is_classifier = output_shape is None or output_shape[-1] > 1
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(
            name="distillation_loss"
        )
        if self._is_classifier:
            self.teacher_agreement = TeacherAgreement()
        self.teacher_cache_nbytes = None
        self._cached_classes = None
        self._teacher_function = None
        if isinstance(self.cache, TeacherStore):
            self._check_store(self.cache)
        # Built models need no build step; saving and `compile_from_config`
        # then see the distiller as built.
        self.built = teacher.built and student.built

    @property
    def alpha_variable(self):
        """The variable holding `alpha`, which the compiled step reads."""
        return self._alpha

    @property
    def _distillation_losses(self):
        if isinstance(self.distillation_loss, (list, tuple)):
            return list(self.distillation_loss)
        return [self.distillation_loss]

    @property
    def data_model(self):
        return self.student

    @property
    def hooked_losses(self):
        return self._distillation_losses

    def _set_distillation_losses(
        self, distillation_loss, weights, temperature, output_shape
    ):
        """Checks and sets the losses, their weights, views and trackers."""
        losses, weights = _as_list(distillation_loss, weights)
        for loss in losses:
            self._check_distillation_loss(loss, temperature, output_shape)
        self.distillation_loss = distillation_loss
        self.distillation_loss_weights = weights
        self._build_views()
        self._term_trackers = self._make_term_trackers()

    def _check_distillation_loss(self, loss, temperature, output_shape):
        if not isinstance(loss, kd_losses.DistillationLoss):
            raise TypeError(
                "distillation_loss must be a kd_keras.losses loss called as "
                "loss(teacher_outputs, student_outputs), such as "
                "kd_keras.losses.KD(temperature=2.0), or a list of them; "
                "Distiller.compile(distillation_loss_fn=...) wraps any "
                f"Keras loss. Received: distillation_loss={loss!r}"
            )
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

    def _build_views(self):
        """The models' views (logits, named layers), and feature adapters."""
        losses = self._distillation_losses
        self._teacher_layers = _unique(loss.teacher_layer for loss in losses)
        self._student_layers = _unique(loss.student_layer for loss in losses)
        self._views = _Views(
            ModelView(self.teacher, self._teacher_layers, "teacher"),
            ModelView(self.student, self._student_layers, "student"),
        )
        adapters = []
        for loss in losses:
            adapter = None
            if loss.teacher_layer or loss.student_layer:
                student_shape = feature_shape(
                    self.student, loss.student_layer, "student"
                )
                adapter = loss.make_adapter(
                    feature_shape(self.teacher, loss.teacher_layer, "teacher"),
                    student_shape,
                )
            if adapter is not None and not adapter.built:
                adapter.build((None, *student_shape))
            adapters.append(adapter)
        self.adapters = adapters

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
            loss, None, _DEFAULT_TEMPERATURE, output_shape(self.student)
        )

    def teacher_outputs(self, x):
        """`[logits, *features]` of the teacher on `x`, as the losses read.

        The logits are float32 (the logits a final softmax or sigmoid was
        applied to); the features are the outputs of the layers the losses
        name.
        """
        outputs = self._views.teacher(x, training=False)
        return [outputs.logits, *outputs.features]

    def _teacher_for(self, x, stored):
        """The teacher's `Teacher` outputs: decoded from the cache, or run."""
        if stored is None:
            logits, *features = self.teacher_outputs(x)
        else:
            logits, *features = teacher_cache.decode(
                stored, self._cached_classes
            )
        return Teacher(logits, features)

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
                [None, *self._teacher_layers],
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
            if adapter is not None:
                s = adapter(s, training=training)
            labels = (
                {"labels": fill_unlabelled(y, teacher.logits)}
                if loss.requires_labels
                else {}
            )
            value = loss(
                teacher_views[loss.teacher_layer],
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
                y, student.output, self._views.student.activation, sample_weight
            )
            alpha = self.alpha_variable
            total = alpha * hard + (1.0 - alpha) * distillation
        total = total + self.regularization(self.student)
        return Losses(total, hard, distillation, terms)

    def _report(self, x, y, student, teacher, sample_weight, losses):
        self.report(
            x,
            [
                (self.loss_tracker, losses.total),
                (self.student_loss_tracker, losses.student),
                (self.distillation_loss_tracker, losses.distillation),
                *zip(self._term_trackers, losses.terms, strict=False),
            ],
        )
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
        teacher = self._teacher_for(x, stored)
        with tf.GradientTape() as tape:
            student = self._views.student(x, training=True)
            losses = self._step_losses(
                y, student, teacher, batch.sample_weight, training=True
            )
            scaled = self.optimizer.scale_loss(losses.total)
        reported = self.apply_update(
            tape, scaled, losses.total, self._trained_variables(), batch
        )
        return self._report(
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
        teacher = self._teacher_for(x, stored)
        student = self._views.student(x, training=False)
        losses = self._step_losses(y, student, teacher, sample_weight, False)
        return self._report(x, y, student, teacher, sample_weight, losses)

    def _cache_storage(self, x):
        """The `TeacherCache` to use for `x`, or `None` to run online.

        With a `TeacherStore` as `cache`, data other than the store's own
        is cached as with `"auto"`."""
        storage = self.cache
        if isinstance(storage, TeacherStore):
            storage = "auto"
        if storage is None:
            return None
        if self.changes_batches:
            if storage == "auto":
                return None
            self._refuse_changed_batches(
                "the teacher's outputs cannot be cached. Pass cache='auto' "
                "or False."
            )
        in_memory = teacher_cache.is_in_memory(x)
        if storage == "auto":
            if not in_memory or self._feature_bytes(x) > _AUTO_CACHE_BYTES:
                return None
            return teacher_cache.TeacherCache()
        if storage.top_k:
            self._check_top_k_readable()
        if not in_memory and not isinstance(x, tf.data.Dataset):
            raise ValueError(
                "Teacher outputs can be cached for numpy arrays, tensors "
                "and finite tf.data.Dataset inputs. Received: "
                f"{type(x).__name__}. Pass cache='auto' or False."
            )
        return storage

    def _refuse_changed_batches(self, consequence):
        """Raises, saying `consequence`, if `prepare_batch` changes each
        batch: the teacher must then see the changed batch."""
        if self.changes_batches:
            raise ValueError(
                f"{type(self).__name__} changes each batch before the "
                f"teacher sees it (prepare_batch): {consequence}"
            )

    def _check_top_k_readable(self):
        """Raises if a loss compares the logits themselves, which top-k
        storage replaces but for the largest."""
        reads_logits = [
            type(loss).__name__
            for loss in self._distillation_losses
            if loss.teacher_layer is None and not loss.softmax_based
        ]
        if reads_logits:
            raise ValueError(
                "TeacherCache(top_k=...) keeps the top logits and replaces "
                "the others by one value, which only softmax-based losses "
                f"can use; {', '.join(reads_logits)} compare the logits "
                "themselves. Pass TeacherCache(top_k=None)."
            )

    def _feature_bytes(self, x):
        """Bytes the cached features of `x` would take in float32."""
        samples = len(keras.tree.flatten(x)[0])
        sizes = [
            np.prod(feature_shape(self.teacher, name), dtype=np.int64)
            for name in self._teacher_layers
        ]
        return 4 * samples * int(sum(sizes))

    @property
    def teacher_layers(self):
        """Names of the teacher layers whose outputs the losses read,
        besides its logits, in the order they are cached."""
        return tuple(self._teacher_layers)

    def check_data(self, names, data):
        """As `Trainer.check_data`; the inputs of `x` packed with the
        teacher's outputs (`with_teacher_outputs`) are checked, and a
        `TeacherStore`, checked when it was built, is not read."""
        x, *rest = data
        if not isinstance(x, TeacherStore):
            super().check_data(names, (teacher_cache.unpack(x)[0], *rest))

    def _check_store(self, store):
        """Raises unless this Distiller can train from `store`: its
        teacher, the teacher layers its losses read, top-k logits."""
        self._refuse_changed_batches(
            "it cannot train from teacher outputs stored ahead."
        )
        store.check_teacher(self.teacher)
        store.check_teacher_layers(self._teacher_layers)
        if store.top_k:
            self._check_top_k_readable()
        self._cached_classes = store.classes

    def _read_store(self, store, batch_size, shuffle):
        """The batches of `store`, with the features the losses read."""
        self._check_store(store)
        return store.dataset(
            batch_size, shuffle=shuffle, teacher_layers=self._teacher_layers
        )

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
        if not teacher_cache.is_in_memory(x):
            raise TypeError(
                "with_teacher_outputs takes numpy arrays or tensors. "
                f"Received: x of type {type(x).__name__}"
            )
        if teacher_cache.is_packed(x):
            return self._with_teacher_outputs("x", x, batch_size, verbose)
        self._refuse_changed_batches(
            "its teacher outputs cannot be computed ahead."
        )
        storage = self._cache_storage(x)
        if not isinstance(storage, teacher_cache.TeacherCache):
            storage = teacher_cache.TeacherCache()
        return self._with_teacher_outputs("x", x, batch_size, verbose, storage)

    def _check_attached(self, name, x):
        """Raises unless the outputs packed in `x` are the ones this
        Distiller's losses read."""
        self._refuse_changed_batches(
            f"{name} cannot carry teacher outputs computed ahead."
        )
        _, stored = teacher_cache.unpack(x)
        if "top_values" in stored:
            self._check_top_k_readable()
        features = sum(key.startswith("feature_") for key in stored)
        if features != len(self._teacher_layers):
            raise ValueError(
                f"The teacher outputs of {name} were computed for losses "
                f"reading {features} teacher layer(s) besides the logits; "
                f"this Distiller's read {len(self._teacher_layers)} "
                f"({', '.join(self._teacher_layers) or 'none'}). Compute "
                "them with this Distiller's with_teacher_outputs."
            )
        if "logits" in stored:
            self._cached_classes = stored["logits"].shape[-1]
        else:
            self._cached_classes = output_shape(self.teacher, "teacher")[-1]

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Evaluates; see `keras.Model.evaluate`. `x` may carry the
        teacher's outputs (`with_teacher_outputs`) or be a `TeacherStore`."""
        if teacher_cache.is_packed(x):
            self._check_attached("x", x)
        if isinstance(x, TeacherStore):
            x = self._read_store(x, kwargs.get("batch_size") or 32, False)
        return super().evaluate(x, y, *args, **kwargs)

    def _with_teacher_outputs(self, name, x, batch_size, verbose, storage=None):
        """`x` with the teacher's outputs attached when they are cached.

        `name` names `x` in errors; `batch_size` is the training batch size;
        arrays are cached in batches of `teacher_cache.caching_batch_size`.
        Outputs already attached (`with_teacher_outputs`) are kept.
        """
        if teacher_cache.is_packed(x):
            self._check_attached(name, x)
            return x
        storage = storage or self._cache_storage(x)
        if storage is None:
            return x
        if self._teacher_function is None:
            # A partial, not the method: TensorFlow keys its retracing
            # warning by the function's code, shared by every Distiller, so
            # a sweep of Distillers, each tracing its own function once,
            # would be reported as retracing.
            self._teacher_function = tf.function(
                functools.partial(self.teacher_outputs),
                reduce_retracing=True,
            )
        if isinstance(x, tf.data.Dataset):
            x, stored, self._cached_classes = teacher_cache.keyed_dataset(
                name, x, self._teacher_function, storage, verbose
            )
        else:
            x, stored, self._cached_classes = teacher_cache.cache_arrays(
                x,
                self._teacher_function,
                storage,
                teacher_cache.caching_batch_size(self.teacher, batch_size),
                verbose,
            )
        finite.check_teacher_outputs(stored, storage.dtype)
        nbytes = teacher_cache.nbytes(stored)
        self.teacher_cache_nbytes = (self.teacher_cache_nbytes or 0) + nbytes
        if verbose:
            print(
                "kd_keras: teacher outputs cached in "
                f"{nbytes / 2**20:.1f} MiB "
                f"({storage.dtype}"
                + (f", top {storage.top_k} logits" if storage.top_k else "")
                + ")"
            )
        return x

    def prepare_fit_data(
        self, x, y, validation_data, batch_size, shuffle, verbose
    ):
        """Reads `x` from a `TeacherStore`: one given as `x` (or as
        `validation_data`), or `cache` when `(x, y)` are the data it was
        built from (checked). Otherwise attaches the teacher's outputs to
        `x` and `validation_data` when `cache` allows it; their memory is
        printed (when `verbose`) and their total kept in
        `teacher_cache_nbytes`."""
        self.teacher_cache_nbytes = None
        if isinstance(self.cache, TeacherStore) and x is not None:
            if not isinstance(x, TeacherStore):
                self.cache.check_data(x if y is None else (x, y))
                x, y = self.cache, None
        if isinstance(x, TeacherStore):
            if y is not None:
                raise ValueError(
                    "y must be None when x is a TeacherStore, which holds "
                    f"the labels. Received: y of type {type(y).__name__}"
                )
            x = self._read_store(x, batch_size, bool(shuffle))
        elif x is not None:
            x = self._with_teacher_outputs("x", x, batch_size, verbose)
        if isinstance(validation_data, TeacherStore):
            validation_data = self._read_store(
                validation_data, batch_size, False
            )
        elif isinstance(validation_data, (tuple, list)):
            validation_data = (
                self._with_teacher_outputs(
                    "validation_data[0]",
                    validation_data[0],
                    batch_size,
                    verbose,
                ),
                *validation_data[1:],
            )
        elif validation_data is not None:
            validation_data = self._with_teacher_outputs(
                "validation_data", validation_data, batch_size, verbose
            )
        return x, y, validation_data

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
        if isinstance(cache, teacher_cache.TeacherCache):
            cache = keras.saving.serialize_keras_object(cache)
        return {
            **super().get_config(),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "student": keras.saving.serialize_keras_object(self.student),
            "distillation_loss": keras.saving.serialize_keras_object(
                self.distillation_loss
            ),
            "alpha": self.alpha,
            "temperature": self.temperature or float(_DEFAULT_TEMPERATURE),
            "distillation_loss_weights": self.distillation_loss_weights,
            "cache": False if cache is None else cache,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # The losses carry their own temperatures, which may differ.
        config.pop("temperature", None)
        for key in ("teacher", "student", "distillation_loss"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        if isinstance(config.get("cache"), dict):
            config["cache"] = keras.saving.deserialize_keras_object(
                config["cache"]
            )
        return cls(**config)
