"""Teacher outputs computed once and reused every epoch.

When the teacher sees the same inputs every epoch, running it at every step
repeats the same work. The `Distiller` runs it once over the data, stores
its outputs (logits and the features feature losses read), and trains the
student from them. The outputs travel with the inputs through Keras' data
handling, packed as `{INPUTS: x, TEACHER_OUTPUTS: outputs}`, so shuffling,
`validation_split` and distribution keep every sample with its own outputs.

For a `tf.data.Dataset`, whose order may change every epoch, each sample is
keyed by a 64-bit fingerprint of its input bytes, and a lookup table in the
input pipeline attaches its outputs to it.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kd_keras import finite
from kd_keras.views import layers_of

INPUTS = "kd_keras_inputs"
TEACHER_OUTPUTS = "kd_keras_teacher_outputs"
_DTYPES = ("float32", "float16")
# Inference keeps no activations for the backward pass, so the caching pass
# can run batches up to 4x the training batch in the memory training takes,
# with fewer calls. Larger batches pay off only while a batch's largest
# activation stays within about a CPU's last-level cache: on a 2-core EPYC,
# a CNN teacher whose first layer outputs 200 KB per sample ran 26% slower
# at batch 512 than at 128, while an MLP teacher (5 KB) ran 1.7x faster.
_BATCH_ACTIVATION_BYTES = 32 * 2**20


@keras.saving.register_keras_serializable(package="kd_keras")
class TeacherCache:
    """How cached teacher outputs are stored.

    Pass it as `Distiller(..., cache=TeacherCache(...))` to cache the
    teacher's outputs with this storage (numpy inputs and finite,
    deterministic `tf.data` pipelines).

    With `top_k`, only the `k` largest logits of each sample are kept, with
    one value standing for all the others: the logit `r` such that the
    other classes, each at `r`, have together the probability they had at
    temperature 1. Softened probabilities at `T = 1` are then exact for the
    top `k` classes and for the mass of the rest; at other temperatures
    they are an approximation. Features are stored whole, in `dtype`.

    Args:
        dtype: `"float32"` or `"float16"` (half the memory; logits and
            features lose precision below about 1e-3 relative). Defaults to
            `"float32"`.
        top_k: Number of logits kept per sample, or `None` for all.
            Defaults to `None`.

    Example:

    ```python
    distiller = kd_keras.Distiller(
        teacher, student, cache=kd_keras.TeacherCache("float16", top_k=5)
    )
    ```
    """

    def __init__(self, dtype="float32", top_k=None):
        if dtype not in _DTYPES:
            raise ValueError(
                f"dtype must be one of {_DTYPES}. Received: dtype={dtype!r}"
            )
        if top_k is not None and (
            isinstance(top_k, bool)
            or not isinstance(top_k, int | np.integer)
            or top_k < 1
        ):
            raise ValueError(
                f"top_k must be a positive integer or None. Received: "
                f"top_k={top_k!r}"
            )
        self.dtype = dtype
        self.top_k = None if top_k is None else int(top_k)

    def encode(self, outputs):
        """Numpy storage of `[logits, *features]`, each `(samples, ...)`.

        A flat dict of arrays: `"logits"` (or `"top_values"`,
        `"top_indices"` and `"rest"`) and `"feature_<i>"`.
        """
        logits, *features = outputs
        stored = {
            f"feature_{i}": f.astype(self.dtype, copy=False)
            for i, f in enumerate(features)
        }
        classes = logits.shape[-1]
        if self.top_k is None or self.top_k >= classes:
            return {"logits": logits.astype(self.dtype, copy=False), **stored}
        indices = np.argpartition(-logits, self.top_k - 1, axis=-1)
        indices = indices[..., : self.top_k]
        values = np.take_along_axis(logits, indices, axis=-1)
        others = logits.astype(np.float64)
        np.put_along_axis(others, indices, -np.inf, axis=-1)
        peak = others.max(axis=-1, keepdims=True)
        rest = peak[..., 0] + np.log(
            np.exp(others - peak).sum(axis=-1) / (classes - self.top_k)
        )
        return {
            "top_values": values.astype(self.dtype),
            "top_indices": indices.astype(_index_dtype(classes)),
            "rest": rest.astype(self.dtype),
            **stored,
        }

    def get_config(self):
        return {"dtype": self.dtype, "top_k": self.top_k}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _index_dtype(classes):
    """The smallest integer type of class indices below `classes`."""
    for dtype in ("uint8", "int16"):
        if classes <= np.iinfo(dtype).max + 1:
            return dtype
    return "int32"


def decode(stored, classes):
    """`[logits, *features]` as float32 tensors, from `encode`'s output."""
    count = sum(key.startswith("feature_") for key in stored)
    features = [
        ops.cast(stored[f"feature_{i}"], "float32") for i in range(count)
    ]
    if "logits" in stored:
        return [ops.cast(stored["logits"], "float32"), *features]
    rest = ops.expand_dims(ops.cast(stored["rest"], "float32"), -1)
    values = ops.cast(stored["top_values"], "float32")
    one_hot = ops.one_hot(ops.cast(stored["top_indices"], "int32"), classes)
    lifts = ops.sum(one_hot * ops.expand_dims(values - rest, -1), axis=-2)
    return [rest + lifts, *features]


def check_cache(cache):
    """`cache` as `"auto"`, `None` (never) or a `TeacherCache`."""
    if cache is True:
        return TeacherCache()
    if cache is False or cache is None:
        return None
    if cache == "auto" or isinstance(cache, TeacherCache):
        return cache
    raise ValueError(
        "cache must be 'auto', True, False or a kd_keras.TeacherCache. "
        f"Received: cache={cache!r}"
    )


def is_in_memory(x):
    """Whether `x` is an array, a dense tensor, or a structure of them."""
    leaves = keras.tree.flatten(x)
    return bool(leaves) and all(
        isinstance(leaf, (np.ndarray, tf.Tensor)) for leaf in leaves
    )


def pack(inputs, stored):
    return {INPUTS: inputs, TEACHER_OUTPUTS: stored}


def is_packed(x):
    """Whether `x` carries the teacher's outputs (`pack`)."""
    return isinstance(x, dict) and TEACHER_OUTPUTS in x


def unpack(x):
    """`(inputs, stored teacher outputs or None)` of a batch's `x`."""
    if is_packed(x):
        return x[INPUTS], x[TEACHER_OUTPUTS]
    return x, None


def nbytes(stored):
    return sum(leaf.nbytes for leaf in keras.tree.flatten(stored))


def caching_batch_size(teacher, batch_size):
    """Batch size of the caching pass: 4, 2 or 1 times `batch_size`.

    The largest multiple whose largest activation fits in
    `_BATCH_ACTIVATION_BYTES`; 4 when the teacher's layer shapes are unknown
    (a subclassed teacher).
    """
    largest = _largest_activation_bytes(teacher)
    for multiple in (4, 2):
        if multiple * batch_size * largest <= _BATCH_ACTIVATION_BYTES:
            return multiple * batch_size
    return batch_size


def _largest_activation_bytes(model):
    """Bytes per sample of `model`'s largest layer output (0: unknown)."""
    sizes = [0]
    for layer in layers_of(model):
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):
            continue
        sizes += [
            np.prod(t.shape[1:], dtype=np.int64) * tf.as_dtype(t.dtype).size
            for t in outputs
            if None not in t.shape[1:]
        ]
    return int(max(sizes))


def _progress(total, verbose, what):
    if not verbose:
        return None
    print(f"kd_keras: computing the teacher's outputs once ({what})")
    return keras.utils.Progbar(total, verbose=1 if verbose == 1 else 2)


def _concatenate(batches):
    return [np.concatenate(parts) for parts in zip(*batches, strict=True)]


def trace_for_any_batch(function, x):
    """Traces the `tf.function` `function` once for batches of `x` of any
    size: the last, smaller batch of a pass then needs no second trace."""
    function.get_concrete_function(
        keras.tree.map_structure(
            lambda a: tf.TensorSpec((None, *a.shape[1:]), a.dtype), x
        )
    )


def cache_arrays(x, teacher_outputs, storage, batch_size, verbose):
    """`x` packed with its teacher outputs, computed in order.

    The outputs are written into arrays allocated once, the features
    directly in `storage.dtype`, so the peak memory is about the cache's.

    Returns:
        `(packed x, stored outputs, number of classes)`.
    """
    samples = len(keras.tree.flatten(x)[0])
    starts = range(0, samples, batch_size)
    progress = _progress(len(starts), verbose, f"{samples} samples")
    trace_for_any_batch(teacher_outputs, x)
    arrays = None
    for step, start in enumerate(starts, 1):
        batch = keras.tree.map_structure(
            lambda a, s=start: a[s : s + batch_size], x
        )
        outputs = [ops.convert_to_numpy(o) for o in teacher_outputs(batch)]
        if arrays is None:
            arrays = [
                np.empty(
                    (samples, *o.shape[1:]),
                    "float32" if i == 0 else storage.dtype,
                )
                for i, o in enumerate(outputs)
            ]
        for array, output in zip(arrays, outputs, strict=True):
            array[start : start + len(output)] = output
        if progress:
            progress.update(step)
    stored = storage.encode(arrays)
    return pack(x, stored), stored, arrays[0].shape[-1]


def fingerprint(x):
    """A 64-bit key per sample of the batch `x`, from its input bytes."""
    parts = [
        tf.fingerprint(tf.reshape(leaf, (tf.shape(leaf)[0], -1)))
        for leaf in keras.tree.flatten(x)
    ]
    keys = parts[0] if len(parts) == 1 else tf.fingerprint(tf.concat(parts, 1))
    return tf.bitcast(keys, tf.int64)


def _keys(dataset):
    keys = [
        fingerprint(keras.utils.unpack_x_y_sample_weight(element)[0]).numpy()
        for element in dataset
    ]
    return np.concatenate(keys) if keys else np.zeros((0,), "int64")


def check_bounded(dataset):
    cardinality = dataset.cardinality()
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "Teacher outputs can only be cached for a finite dataset; this "
            "one repeats forever. Cache before .repeat(), or pass "
            "cache=False to run the teacher at every step."
        )
    if cardinality == tf.data.UNKNOWN_CARDINALITY:
        raise ValueError(
            "Teacher outputs can only be cached for a finite dataset, and "
            "this one's length is unknown (a generator, or a filter): it "
            "may never end. If it is finite, state its length with "
            "dataset.apply(tf.data.experimental.assert_cardinality(n)); "
            "otherwise pass cache=False."
        )


def keyed_dataset(name, dataset, teacher_outputs, storage, verbose):
    """`dataset` with each sample's cached teacher outputs attached.

    Runs the teacher over one pass of `dataset`, each batch checked for NaN
    and Inf before the teacher sees it, then checks with a second,
    teacher-free pass that the pipeline yields the same inputs again.
    `name` names the dataset in errors.

    Returns:
        `(keyed dataset, stored outputs, number of classes)`.

    Raises:
        ValueError: If the dataset repeats forever or its length is
            unknown, if a batch holds NaN or Inf, or if its inputs change
            between passes (random augmentation), where cached outputs would
            belong to inputs the student never sees.
    """
    check_bounded(dataset)
    cardinality = int(dataset.cardinality())
    progress = _progress(
        cardinality if cardinality > 0 else None, verbose, "tf.data"
    )
    keys, batches = [], []
    for step, element in enumerate(dataset, 1):
        finite.check_batch(name, step, element)
        x = keras.utils.unpack_x_y_sample_weight(element)[0]
        keys.append(fingerprint(x).numpy())
        batches.append([ops.convert_to_numpy(o) for o in teacher_outputs(x)])
        if progress:
            progress.update(step)
    keys = np.concatenate(keys)
    unique, first = np.unique(keys, return_index=True)
    if not np.array_equal(unique, np.unique(_keys(dataset))):
        raise ValueError(
            "The dataset yields different inputs on each pass (random "
            "augmentation or sampling before the model), so the teacher's "
            "outputs cannot be cached: they would belong to inputs the "
            "student never sees. Pass cache=False (or 'auto') to run the "
            "teacher at every step, or augment inside the model."
        )
    outputs = [o[first] for o in _concatenate(batches)]
    stored = storage.encode(outputs)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(unique), tf.range(len(unique), dtype=tf.int64)
        ),
        default_value=-1,
    )
    constants = keras.tree.map_structure(tf.constant, stored)

    def attach(*element):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(
            element if len(element) > 1 else element[0]
        )
        rows = table.lookup(fingerprint(x))
        outputs = keras.tree.map_structure(
            lambda c: tf.gather(c, rows), constants
        )
        return keras.utils.pack_x_y_sample_weight(
            pack(x, outputs), y, sample_weight
        )

    keyed = dataset.map(attach, num_parallel_calls=tf.data.AUTOTUNE)
    return keyed, stored, outputs[0].shape[-1]
