"""Where a distiller's teacher outputs come from.

Every step compares the student with the teacher's outputs: its logits and
the outputs of the layers the feature losses name. They come from one of
four places, chosen for each `fit` and `evaluate` call:

- the teacher, run on each batch (online);
- a cache the teacher fills once per `fit`, in memory (`cache`);
- a `TeacherStore` on disk, filled once for every later run (`store`);
- outputs attached to the inputs ahead, once for several distillers of one
  teacher (a sweep, a tuning search).

`TeacherSource` makes that choice, prepares `fit`'s and `evaluate`'s data
for it, and gives each step its batch's outputs.
"""

import collections
import functools

import keras
import numpy as np
import tensorflow as tf

from kd_keras import finite
from kd_keras.teacher_outputs import cache as teacher_cache
from kd_keras.teacher_outputs.store import TeacherStore
from kd_keras.views import ModelView, feature_shape, output_shape

# Under cache="auto", features larger than this (float32) run online.
AUTO_CACHE_BYTES = 2**30

Teacher = collections.namedtuple("Teacher", ["logits", "features"])
Teacher.__doc__ = "The teacher's float32 logits and named layers' outputs."


def check_cache(cache):
    """`cache` as `"auto"`, `None` (never), a `TeacherCache` or a
    `TeacherStore`."""
    if isinstance(cache, TeacherStore):
        return cache
    return teacher_cache.check_cache(cache)


class TeacherSource:
    """The teacher's outputs for a distiller's losses, from wherever they are.

    Args:
        teacher: The teacher `keras.Model`.
        cache: What `Distiller(cache=...)` takes: `"auto"`, `True`,
            `False`, a `TeacherCache` or a `TeacherStore`.
        losses: The distillation losses (`read_for`).
        changed_by: The name of the trainer when its `prepare_batch`
            changes each batch before the teacher sees it: then the
            outputs are never stored ahead. Defaults to `None`.
    """

    def __init__(self, teacher, cache, losses, changed_by=None):
        self.teacher = teacher
        self.cache = check_cache(cache)
        self.changed_by = changed_by
        # Bytes of the outputs cached by the last `fit`, or `None`.
        self.nbytes = None
        self._classes = None
        self._function = None
        self.read_for(losses)

    def read_for(self, losses):
        """Sets what `losses` read: the teacher layers they name, and
        whether the largest logits alone (top-k storage) serve them."""
        layers = [loss.teacher_layer for loss in losses]
        self.view = ModelView(
            self.teacher,
            list(dict.fromkeys(n for n in layers if n is not None)),
            "teacher",
        )
        self.logit_readers = tuple(
            type(loss).__name__
            for loss in losses
            if loss.teacher_layer is None and not loss.softmax_based
        )
        if isinstance(self.cache, TeacherStore):
            self.check_store(self.cache)

    @property
    def teacher_layers(self):
        """Names of the teacher layers whose outputs are read, besides its
        logits, in the order they are stored."""
        return tuple(self.view.layer_names)

    # --- In the step -----------------------------------------------------

    def run(self, x):
        """`[logits, *features]` of the teacher on `x`: float32 logits (those
        a final softmax or sigmoid was applied to) and the named layers'
        outputs."""
        outputs = self.view(x, training=False)
        return [outputs.logits, *outputs.features]

    def outputs(self, x, stored):
        """The `Teacher` outputs of a batch: `stored` ones decoded, or the
        teacher run on `x` when `stored` is `None`."""
        if stored is None:
            logits, *features = self.run(x)
        else:
            logits, *features = teacher_cache.decode(stored, self._classes)
        return Teacher(logits, features)

    # --- Before fit and evaluate -----------------------------------------

    def fit_data(self, x, y, validation_data, batch_size, shuffle, verbose):
        """`(x, y, validation_data)` for Keras' `fit`.

        Read from a `TeacherStore`: one given as `x` (or as
        `validation_data`), or `cache` when `(x, y)` are the data it was
        built from (checked). Otherwise the teacher's outputs are attached
        to `x` and `validation_data` when `cache` allows it; their memory
        is printed (when `verbose`) and their total kept in `nbytes`.
        """
        self.nbytes = None
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
            x = self._attach("x", x, batch_size, verbose)
        if isinstance(validation_data, TeacherStore):
            validation_data = self._read_store(
                validation_data, batch_size, False
            )
        elif isinstance(validation_data, (tuple, list)):
            validation_data = (
                self._attach(
                    "validation_data[0]",
                    validation_data[0],
                    batch_size,
                    verbose,
                ),
                *validation_data[1:],
            )
        elif validation_data is not None:
            validation_data = self._attach(
                "validation_data", validation_data, batch_size, verbose
            )
        return x, y, validation_data

    def evaluate_data(self, x, batch_size):
        """`x` for Keras' `evaluate`: a `TeacherStore`'s batches, outputs
        attached ahead (checked), or `x` as it is (the teacher runs)."""
        if teacher_cache.is_packed(x):
            self._check_attached("x", x)
        if isinstance(x, TeacherStore):
            return self._read_store(x, batch_size, False)
        return x

    def attach(self, x, batch_size=32, verbose=1):
        """`x` with the teacher's outputs on it, computed now, once (see
        `Distiller.with_teacher_outputs`)."""
        if not teacher_cache.is_in_memory(x):
            raise TypeError(
                "with_teacher_outputs takes numpy arrays or tensors. "
                f"Received: x of type {type(x).__name__}"
            )
        if teacher_cache.is_packed(x):
            return self._attach("x", x, batch_size, verbose)
        self._refuse_changed_batches(
            "its teacher outputs cannot be computed ahead."
        )
        storage = self._storage(x)
        if not isinstance(storage, teacher_cache.TeacherCache):
            storage = teacher_cache.TeacherCache()
        return self._attach("x", x, batch_size, verbose, storage)

    def check_store(self, store):
        """Raises unless the losses can be served from `store`: its
        teacher, the teacher layers they read, top-k logits."""
        self._refuse_changed_batches(
            "it cannot train from teacher outputs stored ahead."
        )
        store.check_teacher(self.teacher)
        store.check_teacher_layers(self.teacher_layers)
        if store.top_k:
            self._check_top_k_readable()
        self._classes = store.classes

    # --- How -------------------------------------------------------------

    def _storage(self, x):
        """The `TeacherCache` to use for `x`, or `None` to run online.

        With a `TeacherStore` as `cache`, data other than the store's own
        is cached as with `"auto"`."""
        storage = self.cache
        if isinstance(storage, TeacherStore):
            storage = "auto"
        if storage is None:
            return None
        if self.changed_by:
            if storage == "auto":
                return None
            self._refuse_changed_batches(
                "the teacher's outputs cannot be cached. Pass cache='auto' "
                "or False."
            )
        in_memory = teacher_cache.is_in_memory(x)
        if storage == "auto":
            if not in_memory or self._feature_bytes(x) > AUTO_CACHE_BYTES:
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

    def _runs_online_by_default(self, x):
        """Whether the dataset `x` runs online only because `cache` is
        `"auto"` (a store of other data counts as `"auto"`)."""
        return (
            isinstance(x, tf.data.Dataset)
            and not self.changed_by
            and (self.cache == "auto" or isinstance(self.cache, TeacherStore))
        )

    def _refuse_changed_batches(self, consequence):
        """Raises, saying `consequence`, if the trainer changes each batch
        before the teacher sees it: the teacher must see the changed
        batch."""
        if self.changed_by:
            raise ValueError(
                f"{self.changed_by} changes each batch before the teacher "
                f"sees it (prepare_batch): {consequence}"
            )

    def _check_top_k_readable(self):
        """Raises if a loss compares the logits themselves, which top-k
        storage replaces but for the largest."""
        if self.logit_readers:
            raise ValueError(
                "TeacherCache(top_k=...) keeps the top logits and replaces "
                "the others by one value, which only softmax-based losses "
                f"can use; {', '.join(self.logit_readers)} compare the "
                "logits themselves. Pass TeacherCache(top_k=None)."
            )

    def _feature_bytes(self, x):
        """Bytes the cached features of `x` would take in float32."""
        samples = len(keras.tree.flatten(x)[0])
        sizes = [
            np.prod(feature_shape(self.teacher, name), dtype=np.int64)
            for name in self.teacher_layers
        ]
        return 4 * samples * int(sum(sizes))

    def _read_store(self, store, batch_size, shuffle):
        """The batches of `store`, with the features the losses read."""
        self.check_store(store)
        return store.dataset(
            batch_size, shuffle=shuffle, teacher_layers=self.teacher_layers
        )

    def _check_attached(self, name, x):
        """Raises unless the outputs packed in `x` are the ones the losses
        read."""
        self._refuse_changed_batches(
            f"{name} cannot carry teacher outputs computed ahead."
        )
        _, stored = teacher_cache.unpack(x)
        if "top_values" in stored:
            self._check_top_k_readable()
        features = sum(key.startswith("feature_") for key in stored)
        if features != len(self.teacher_layers):
            raise ValueError(
                f"The teacher outputs of {name} were computed for losses "
                f"reading {features} teacher layer(s) besides the logits; "
                f"this Distiller's read {len(self.teacher_layers)} "
                f"({', '.join(self.teacher_layers) or 'none'}). Compute "
                "them with this Distiller's with_teacher_outputs."
            )
        if "logits" in stored:
            self._classes = stored["logits"].shape[-1]
        else:
            self._classes = output_shape(self.teacher, "teacher")[-1]

    def _attach(self, name, x, batch_size, verbose, storage=None):
        """`x` with the teacher's outputs attached when they are cached.

        `name` names `x` in errors; `batch_size` is the training batch
        size; arrays are cached in batches of
        `cache.caching_batch_size`. Outputs already attached are kept.
        """
        if teacher_cache.is_packed(x):
            self._check_attached(name, x)
            return x
        storage = storage or self._storage(x)
        if storage is None:
            if verbose and name == "x" and self._runs_online_by_default(x):
                print(
                    "kd_keras: x is a tf.data.Dataset, so the teacher runs "
                    "at every step; cache=True computes its outputs once "
                    "(the pipeline must give the same inputs every epoch: "
                    "augment inside the model)."
                )
            return x
        if self._function is None:
            # A partial, not the method: TensorFlow keys its retracing
            # warning by the function's code, shared by every source, so
            # a sweep of distillers, each tracing its own function once,
            # would be reported as retracing.
            self._function = tf.function(
                functools.partial(self.run), reduce_retracing=True
            )
        if isinstance(x, tf.data.Dataset):
            x, stored, self._classes = teacher_cache.keyed_dataset(
                name, x, self._function, storage, verbose
            )
        else:
            x, stored, self._classes = teacher_cache.cache_arrays(
                x,
                self._function,
                storage,
                teacher_cache.caching_batch_size(self.teacher, batch_size),
                verbose,
            )
        finite.check_teacher_outputs(stored, storage.dtype)
        nbytes = teacher_cache.nbytes(stored)
        self.nbytes = (self.nbytes or 0) + nbytes
        if verbose:
            print(
                "kd_keras: teacher outputs cached in "
                f"{nbytes / 2**20:.1f} MiB "
                f"({storage.dtype}"
                + (f", top {storage.top_k} logits" if storage.top_k else "")
                + ")"
            )
        return x
