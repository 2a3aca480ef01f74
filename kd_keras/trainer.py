"""The core every kd_keras trainer shares.

A trainer (`Distiller`, `FunctionMatching`, `MutualLearning`) is a
`keras.Model` that computes its own loss in `train_step`. What they all do
is done here, once:

- the hard-label loss, Keras' by the form of the labels unless one is
  given, with unlabelled samples masked (`kd_keras.labels`);
- the students' regularization losses, shared across replicas;
- the update, applied only when the batch and its loss are finite
  (`kd_keras.finite.Guard`): nothing non-finite is written into a student;
- reporting the losses through trackers, as Keras reports its own;
- `fit` and `evaluate` checking their data before anything runs, and
  stopping with a clear error when a batch was skipped.
"""

import collections

import keras
import tensorflow as tf
from keras import ops

from kd_keras import compat, distribute, finite, saving, validation
from kd_keras.labels import (
    is_one_hot,
    mask_unlabelled,
    split_unlabelled,
    weigh_labelled,
)
from kd_keras.views import output_shape

Batch = collections.namedtuple("Batch", ["x", "y", "sample_weight"])
Batch.__doc__ = "A training batch, as `keras.utils.unpack_x_y_sample_weight`."


def replica_count():
    """Number of replicas of the current `tf.distribute` strategy."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def default_label_loss(labels, outputs, activation):
    """The hard-label loss for `outputs` when none is given.

    Binary cross-entropy on the probabilities of a sigmoid output (binary
    or multi-label); mean squared error for other single-unit outputs;
    otherwise categorical cross-entropy for one-hot `labels` and sparse
    categorical cross-entropy for class indices, from logits unless
    `activation` is `"softmax"`.

    Args:
        labels: The labels (their shape decides one-hot or class indices).
        outputs: The model's outputs.
        activation: The output activation (`views.output_activation`).

    Returns:
        A `keras.losses.Loss`.
    """
    if activation == "sigmoid":
        return keras.losses.BinaryCrossentropy()
    if outputs.shape[-1] == 1:
        return keras.losses.MeanSquaredError()
    from_logits = activation != "softmax"
    if is_one_hot(labels.shape, outputs.shape):
        return keras.losses.CategoricalCrossentropy(from_logits=from_logits)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


class _PerSampleLoss(keras.losses.Loss):
    """A loss function `fn(y_true, y_pred)` with Keras' reductions."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


class _LossHooks(keras.callbacks.Callback):
    """Tells the distillation losses where training is (DKD's warm-up)."""

    def __init__(self, losses):
        super().__init__()
        self.losses = losses

    def on_epoch_begin(self, epoch, logs=None):
        for loss in self.losses:
            loss.on_epoch_begin(epoch)

    def on_train_end(self, logs=None):
        for loss in self.losses:
            loss.on_train_end()


class Trainer(distribute.MultiWorkerSteps, saving.ReliableSaving, keras.Model):
    """Base class of the kd_keras trainers: what every one of them shares.

    A subclass writes `train_step` and `test_step` with `hard_label_loss`,
    `regularization`, `apply_update` and `update_trackers`, says which
    model the data must fit (`data_model`) and which distillation losses
    want to hear of the epochs (`hooked_losses`), and may prepare `fit`'s
    data (`prepare_fit_data`, e.g. to cache teacher outputs).

    The hard-label loss is `student_loss_fn`, set by `compile(loss=...)`,
    or `default_label_loss`; it is saved with the compile config.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.student_loss_fn = None
        self._guard = finite.Guard()

    # --- What subclasses provide -----------------------------------------

    @property
    def data_model(self):
        """The model whose inputs and outputs `fit`'s data must fit."""
        raise NotImplementedError

    @property
    def hooked_losses(self):
        """Losses told of epochs and the end of training. Defaults to none."""
        return []

    def prepare_fit_data(
        self, x, y, validation_data, batch_size, shuffle, verbose
    ):
        """`(x, y, validation_data)` for Keras' `fit`; unchanged by default."""
        return x, y, validation_data

    # --- The step --------------------------------------------------------

    def hard_label_loss(self, y, outputs, activation, sample_weight):
        """The hard-label loss of `outputs`, float32, unlabelled masked.

        Args:
            y: The labels.
            outputs: A student's outputs.
            activation: Its output activation (`views.output_activation`).
            sample_weight: The sample weights, or `None`.
        """
        y, sample_weight = mask_unlabelled(y, outputs, sample_weight)
        loss_fn = self.student_loss_fn
        if loss_fn is None:
            loss_fn = default_label_loss(y, outputs, activation)
        elif not isinstance(loss_fn, keras.losses.Loss):
            loss_fn = _PerSampleLoss(loss_fn)
        return ops.cast(loss_fn(y, outputs, sample_weight), "float32")

    @staticmethod
    def regularization(model):
        """`model`'s regularization losses, float32, shared by the replicas.

        As Keras does for its losses, under a `tf.distribute` strategy each
        replica's share is divided by the number of replicas, so that the
        gradients, summed over the replicas, are those of the global batch.
        """
        if not model.losses:
            return ops.zeros((), "float32")
        total = ops.cast(ops.sum(model.losses), "float32")
        return total / replica_count()

    def apply_update(self, tape, scaled_loss, loss, variables, batch):
        """Applies the gradients of `scaled_loss` if `batch` and `loss` are
        finite; returns the loss to report (NaN when skipped).

        Args:
            tape: The `tf.GradientTape` that recorded the loss.
            scaled_loss: `optimizer.scale_loss(loss)`, recorded on the tape.
            loss: The loss.
            variables: The variables to train.
            batch: The step's `Batch`, as given (before any augmentation).
        """
        gradients = tape.gradient(scaled_loss, variables)
        return self._guard.apply(
            self.optimizer, batch, loss, gradients, variables
        )

    def update_trackers(self, x, values):
        """Updates trackers with this batch's values.

        Args:
            x: The batch's inputs (for the batch size).
            values: `(keras.metrics.Mean, value)` pairs. Values are each
                replica's share; the trackers get the batch's mean.
        """
        batch_size = ops.shape(keras.tree.flatten(x)[0])[0]
        for tracker, value in values:
            tracker.update_state(
                value * replica_count(), sample_weight=batch_size
            )

    def update_metrics(self, x, y, y_pred, sample_weight, outputs):
        """Updates the compiled metrics, unlabelled samples (class
        `kd_keras.labels.UNLABELLED`) left out of every one; returns the
        logs.

        Args:
            x: The inputs.
            y: The labels, for every output.
            y_pred: The outputs: one, or a dict by output name.
            sample_weight: The sample weights, or `None`.
            outputs: One output, whose shape tells class indices.
        """
        filled, labelled = split_unlabelled(y, outputs)
        if isinstance(y_pred, dict):
            filled = dict.fromkeys(y_pred, filled)
        if labelled is None:
            return super().compute_metrics(x, filled, y_pred, sample_weight)
        weights = weigh_labelled(labelled, sample_weight)
        compat.update_compiled_metrics(self, filled, y_pred, labelled, weights)
        return self.get_metrics_result()

    @property
    def loss_tracker(self):
        """The tracker of the `loss` in the logs (Keras' own)."""
        return compat.loss_tracker(self)

    def get_metrics_result(self):
        # Without labels the compiled metrics are never built: leave them
        # out instead of failing.
        compiled = compat.compiled_metrics(self)
        if compiled is None or compiled.built:
            return super().get_metrics_result()
        return {
            metric.name: metric.result()
            for metric in self.metrics
            if metric is not compiled
        }

    # --- Saving the compile config --------------------------------------

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

    # --- fit and evaluate --------------------------------------------------

    def check_data(self, names, data):
        """Raises for empty, mis-shaped or non-finite data, naming it.

        Args:
            names: The names of `x`, `y` and `sample_weight`.
            data: `(x, y, sample_weight)`, any of them `None`.
        """
        # Tensors are read as numpy once, for all the checks.
        x, y, sample_weight = keras.tree.map_structure(
            validation.as_numpy, data
        )
        validation.check_lengths(names, (x, y, sample_weight))
        validation.check_not_empty(names[0], x)
        validation.check_x(self.data_model, x)
        validation.check_y(names[1], y, output_shape(self.data_model))
        for name, value in zip(names, (x, y, sample_weight), strict=True):
            finite.check_array(name, value)

    def build_from_data(self, x, y, sample_weight):
        """Creates the variables a first step would create (the optimizer's,
        the compiled metrics') from the shapes of `fit`'s data, so that
        `tf.function` traces the step once instead of twice.

        Left to the step for data without labels, or that is neither arrays,
        tensors nor a `tf.data.Dataset`.
        """
        if not self.compiled:
            return  # Keras' fit says to compile first.
        if isinstance(x, tf.data.Dataset):
            batch = keras.utils.unpack_x_y_sample_weight(x.element_spec)
        else:
            batch = (x, y, sample_weight)
        leaves = keras.tree.flatten(batch)
        if batch[1] is not None and all(
            v is None or hasattr(v, "shape") for v in leaves
        ):
            compat.build_from_batch(self, batch)

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
    ):
        """Trains; see `keras.Model.fit`, whose arguments it takes.

        Before training, the data in memory is checked (emptiness, shapes,
        labels, NaN and Inf) and `prepare_fit_data` runs. During training,
        a batch whose inputs, labels, sample weights or loss are not finite
        leaves the weights as they were and stops `fit` with a
        `ValueError` naming the cause.
        """
        self.check_data(("x", "y", "sample_weight"), (x, y, sample_weight))
        if isinstance(validation_data, (tuple, list)):
            self.check_data(
                [f"validation_data[{i}]" for i in range(3)],
                (*validation_data, None, None)[:3],
            )
        distribute.check_shuffle(self.distribute_strategy, x, shuffle)
        shape = output_shape(self.data_model)
        x = validation.check_dataset_labels("x", x, shape)
        validation_data = validation.check_dataset_labels(
            "validation_data", validation_data, shape
        )
        # A dataset's labels are checked as its batches come.
        with validation.dataset_label_errors():
            x, y, validation_data = self.prepare_fit_data(
                x,
                y,
                validation_data,
                batch_size or 32,
                shuffle,
                1 if verbose == "auto" else verbose,
            )
            self.build_from_data(x, y, sample_weight)
            checked = finite.checked_before_training((x, y, sample_weight))
            if checked != self._guard.data_checked:
                # The step reads the flag when it is traced.
                self._guard.data_checked = checked
                self.train_function = None
            callbacks = [
                *(callbacks or []),
                _LossHooks(self.hooked_losses),
                finite.StopOnNonFinite(self._guard),
            ]
            return super().fit(
                x=x,
                y=y,
                batch_size=batch_size,
                epochs=epochs,
                verbose=verbose,
                callbacks=callbacks,
                validation_split=validation_split,
                validation_data=validation_data,
                # Keras ignores `shuffle` for a dataset, with a warning: a
                # dataset shuffles itself (as the ones made here do).
                shuffle=shuffle and not isinstance(x, tf.data.Dataset),
                class_weight=class_weight,
                sample_weight=sample_weight,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps,
                validation_batch_size=validation_batch_size,
                validation_freq=validation_freq,
            )

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Evaluates; see `keras.Model.evaluate`. The labels are checked:
        arrays first, a dataset's batch by batch."""
        shape = output_shape(self.data_model)
        validation.check_y("y", validation.as_numpy(y), shape)
        x = validation.check_dataset_labels("x", x, shape)
        with validation.dataset_label_errors():
            return super().evaluate(x, y, *args, **kwargs)
