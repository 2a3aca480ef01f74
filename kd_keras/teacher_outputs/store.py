"""Teacher outputs on disk: computed once, read by every later run.

A `TeacherStore` is a folder of shards and a manifest. Each shard is a file
of fixed-length records, one per sample, holding the sample's inputs, its
label (when there are labels) and the teacher's outputs on it, encoded as
`TeacherCache` encodes them (all logits or the top `k`, in float16 or
float32, and the features that feature losses read). A record carries all
that a training step needs, so shuffling, and sharding by file (each worker
of a `MultiWorkerMirroredStrategy` reads its own shards), keep every sample
with its own outputs, and reading streams: memory stays flat in the data
set's size.

A build writes each shard under a temporary name and renames it once
complete, records its progress in `build.json`, and writes `manifest.json`
last: a folder without a manifest is never read as a store, and a build run
again over an interrupted one resumes after its last complete shard.
"""

import hashlib
import itertools
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kd_keras import finite
from kd_keras.hyperparameters import check_integer
from kd_keras.teacher_outputs import cache as teacher_cache
from kd_keras.validation import check_lengths
from kd_keras.views import ModelView, layers_of, output_shape

MANIFEST = "manifest.json"
PROGRESS = "build.json"
_FORMAT = 1
_SHARD = "shard-{:05d}.bin"
_PARTIAL = ".partial"
_SHARD_BYTES = 128 * 2**20
_SHUFFLE_BUFFER = 10_000
_INPUT, _LABEL = "input", "label"


def _model_fingerprint(model):
    """A hash of `model`'s architecture (each layer's type and
    configuration, names and trainability left out, so that a reloaded or
    rebuilt twin, or a frozen one, matches) and weights."""
    digest = hashlib.sha256()
    for layer in layers_of(model):
        try:
            config = layer.get_config()
        except NotImplementedError:
            config = {}
        config = {
            k: v for k, v in config.items() if k not in ("name", "trainable")
        }
        if isinstance(layer, keras.Model):
            config = {}  # its layers are hashed one by one
        digest.update(type(layer).__name__.encode())
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _sample_fields(x, y):
    """`[(field name, array)]` of a batch's inputs (an array or a dict of
    them) and labels."""
    if isinstance(x, dict):
        fields = [(f"{_INPUT}/{key}", x[key]) for key in sorted(x)]
    else:
        fields = [(_INPUT, x)]
    return fields if y is None else [*fields, (_LABEL, y)]


def _inputs(fields):
    """The inputs among decoded fields: an array, or a dict of them."""
    if _INPUT in fields:
        return fields[_INPUT]
    prefix = f"{_INPUT}/"
    return {
        name[len(prefix) :]: value
        for name, value in fields.items()
        if name.startswith(prefix)
    }


def _unpack(element):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(element)
    if sample_weight is not None:
        raise ValueError(
            "A TeacherStore holds inputs and labels, not sample weights. "
            "Received: data with sample weights."
        )
    return x, y


def _batches(data, batch_size):
    """`(samples or None, iterator of numpy (x, y) batches)` of `data`.

    `data` is `x`, `(x, y)` (arrays, tensors or dicts of them) or a batched
    `tf.data.Dataset` of such elements, re-batched to `batch_size`.
    """
    if isinstance(data, tf.data.Dataset):
        if data.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                "data repeats forever; a TeacherStore holds a finite data "
                "set. Build it before .repeat()."
            )
        batches = (
            _as_numpy(*_unpack(element))
            for element in data.unbatch().batch(batch_size)
        )
        return None, batches
    x, y = _unpack(data if isinstance(data, tuple) else (data,))
    if not teacher_cache.is_in_memory(x):
        raise TypeError(
            "data must be numpy arrays or tensors, (x, y), or a batched "
            f"tf.data.Dataset. Received: data of type {type(x).__name__}"
        )
    x, y = _as_numpy(x, y)
    check_lengths(("x", "y"), (x, y))
    samples = _count(x)
    batches = (
        _map(lambda a, s=s: a[s : s + batch_size], x, y)
        for s in range(0, samples, batch_size)
    )
    return samples, batches


def _map(function, x, y):
    """`function` applied to the arrays of `x` and of `y` (or `None`)."""
    x = keras.tree.map_structure(function, x)
    return x, None if y is None else function(y)


def _as_numpy(x, y):
    return _map(np.asarray, x, y)


def _shards_of(batches, samples_per_shard):
    """Groups `(x, y)` batches by shard: yields `(index, batches)` where
    `batches` is an iterator of that shard's batches."""
    iterator = iter(batches)
    pending = next(iterator, None)
    index = 0
    while pending is not None:

        def shard():
            nonlocal pending
            count = 0
            while pending is not None and count < samples_per_shard:
                batch, pending = pending, next(iterator, None)
                count += _count(batch[0])
                yield batch

        yield index, shard()
        index += 1


def _count(x):
    return len(keras.tree.flatten(x)[0])


def _layout(fields):
    """`[[name, dtype, shape]]` of `(name, array)` fields, little-endian."""
    layout = []
    for name, array in fields:
        if array.dtype.kind not in "iuf":
            raise TypeError(
                "A TeacherStore holds numeric inputs and labels. Received: "
                f"{name} of dtype {array.dtype}"
            )
        dtype = array.dtype.newbyteorder("<").str
        layout.append([name, dtype, list(array.shape[1:])])
    return layout


def _record_dtype(layout):
    return np.dtype(
        [(name, dtype, tuple(shape)) for name, dtype, shape in layout]
    )


def _is_output(name):
    return name != _LABEL and not name.startswith(_INPUT)


class TeacherStore:
    """Teacher outputs stored on disk, with the samples they belong to.

    Build one with `TeacherStore.build(teacher, data, path)`: the teacher
    runs once over `data`, and its outputs are written with each sample's
    inputs and label. Open it with `TeacherStore(path)` in any later run
    (another student, another seed, each worker of a multi-worker job): the
    teacher does not run again.

    A `Distiller` of the same teacher (checked: a hash of its weights and
    architecture) trains from it as `fit(store)`, or as `fit(x, y)` with
    `cache=store` when `(x, y)` are the data the store was built from
    (checked: their count and fingerprint).

    Args:
        path: The store's folder, as `build` wrote it.

    Raises:
        ValueError: If `path` holds no complete store (an interrupted
            build, or something else), or a shard is missing or truncated.

    Example:

    ```python
    store = kd_keras.TeacherStore.build(
        teacher, (x_train, y_train), "runs/store", top_k=5
    )
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam", metrics=["accuracy"])
    distiller.fit(store, epochs=10, batch_size=64)  # the teacher does not run
    ```
    """

    def __init__(self, path):
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            if (self.path / PROGRESS).is_file():
                raise ValueError(
                    f"{str(self.path)!r} holds a TeacherStore whose build "
                    "was interrupted. Run TeacherStore.build with the same "
                    "teacher, data and settings again to resume it."
                )
            raise ValueError(
                f"{str(self.path)!r} is not a TeacherStore (no {MANIFEST})."
            )
        self.manifest = json.loads(manifest.read_text())
        if self.manifest.get("format") != _FORMAT:
            raise ValueError(
                f"{str(self.path)!r} holds a TeacherStore of format "
                f"{self.manifest.get('format')!r}; this version reads format "
                f"{_FORMAT}."
            )
        self._record = _record_dtype(self.manifest["layout"])
        for shard in self.manifest["shards"]:
            file = self.path / shard["file"]
            expected = shard["samples"] * self._record.itemsize
            size = file.stat().st_size if file.is_file() else None
            if size != expected:
                found = "missing" if size is None else f"{size} bytes"
                raise ValueError(
                    f"The TeacherStore {str(self.path)!r} is damaged: "
                    f"{shard['file']} should hold {expected} bytes "
                    f"({shard['samples']} samples) and is {found}. Build it "
                    "again with overwrite=True."
                )

    @property
    def samples(self):
        return self.manifest["samples"]

    @property
    def classes(self):
        return self.manifest["classes"]

    @property
    def dtype(self):
        return self.manifest["dtype"]

    @property
    def top_k(self):
        return self.manifest["top_k"]

    @property
    def teacher_layers(self):
        """Names of the teacher layers whose outputs are stored, in order."""
        return tuple(self.manifest["teacher_layers"])

    @property
    def has_labels(self):
        return _LABEL in self._record.names

    @property
    def nbytes(self):
        """Bytes of the shards."""
        return self.samples * self._record.itemsize

    @property
    def output_nbytes(self):
        """Bytes per sample of the teacher's outputs."""
        return sum(
            self._record.fields[name][0].itemsize
            for name in self._record.names
            if _is_output(name)
        )

    def __repr__(self):
        kept = f"top {self.top_k} logits" if self.top_k else "all logits"
        return (
            f"TeacherStore({str(self.path)!r}: {self.samples} samples, "
            f"{kept} and {len(self.teacher_layers)} feature(s) in "
            f"{self.dtype}, {self.nbytes / 2**20:.1f} MiB)"
        )

    def check_teacher(self, teacher):
        """Raises unless `teacher` is the model the store was built for."""
        if _model_fingerprint(teacher) != self.manifest["teacher"]:
            raise ValueError(
                f"The TeacherStore {str(self.path)!r} was built for another "
                f"teacher than {teacher.name!r}: their weights or "
                "architecture differ. Build a store for this teacher."
            )

    def check_teacher_layers(self, names):
        """Raises if a feature loss reads a layer the store lacks."""
        missing = [name for name in names if name not in self.teacher_layers]
        if missing:
            raise ValueError(
                f"The TeacherStore {str(self.path)!r} holds the teacher's "
                "logits and the outputs of "
                f"{list(self.teacher_layers) or 'no layer'}; the losses also "
                f"read {missing}. Build it with "
                f"teacher_layers={list(names)!r}."
            )

    def check_data(self, data):
        """Raises unless `data` (as `build` takes it) are the samples the
        store holds, in order: their count and fingerprint are compared."""
        _, batches = _batches(data, self.manifest["batch_size"])
        digests, samples = [], 0
        for _, shard in _shards_of(batches, self.manifest["samples_per_shard"]):
            digest, count = _shard_digest(shard)
            digests.append(digest)
            samples += count
        if digests != [shard["data"] for shard in self.manifest["shards"]]:
            received = (
                "other samples"
                if samples == self.samples
                else f"{samples} samples"
            )
            raise ValueError(
                f"The TeacherStore {str(self.path)!r} was built for other "
                f"data ({self.samples} samples); received {received}. Pass "
                "the data it was built from, in the same order, or build a "
                "store for these."
            )

    def dataset(
        self, batch_size=32, shuffle=True, seed=None, teacher_layers=None
    ):
        """The samples with their teacher outputs, as a `tf.data.Dataset`.

        Elements are `(x, y)`, or `x` when the store holds no labels; `x`
        packs the inputs with the teacher's outputs, decoded to float32
        logits and features, as a `Distiller` reads them. Shuffling
        shuffles the shards' order and the samples within a buffer of
        10,000, anew every epoch.

        Args:
            batch_size: Samples per batch. Defaults to `32`.
            shuffle: Whether to shuffle. Defaults to `True`.
            seed: The shuffle's seed. Defaults to `None`.
            teacher_layers: Names of the stored features to keep, in this
                order; `None` keeps them all. Defaults to `None`.
        """
        if teacher_layers is None:
            teacher_layers = self.teacher_layers
        self.check_teacher_layers(teacher_layers)
        files = [str(self.path / s["file"]) for s in self.manifest["shards"]]
        data = tf.data.Dataset.from_tensor_slices(files)
        if shuffle:
            data = data.shuffle(len(files), seed=seed)
        data = data.interleave(
            lambda file: tf.data.FixedLengthRecordDataset(
                file, self._record.itemsize, buffer_size=2**20
            ),
            cycle_length=min(len(files), 4) if shuffle else 1,
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        if shuffle:
            data = data.shuffle(min(self.samples, _SHUFFLE_BUFFER), seed=seed)
        # Read in records, the length is unknown to tf.data; stated, Keras
        # knows the epoch's steps before the first epoch ends.
        batches = -(-self.samples // batch_size)
        return (
            data.batch(batch_size)
            .apply(tf.data.experimental.assert_cardinality(batches))
            .map(self._decoder(teacher_layers), tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )

    def _decoder(self, teacher_layers):
        features = {
            f"feature_{self.teacher_layers.index(name)}": f"feature_{i}"
            for i, name in enumerate(teacher_layers)
        }
        classes = self.classes
        fields = [
            (name, *self._record.fields[name][1::-1])
            for name in self._record.names
            if not name.startswith("feature_") or name in features
        ]

        def decode(records):
            values = {}
            for name, offset, dtype in fields:
                raw = tf.io.decode_raw(
                    tf.strings.substr(records, offset, dtype.itemsize),
                    tf.as_dtype(dtype.base.newbyteorder("=")),
                )
                values[features.get(name, name)] = tf.reshape(
                    raw, (-1, *dtype.shape)
                )
            # Decoded here, in tf.data's threads, rather than in the step.
            logits, *outputs = teacher_cache.decode(
                {k: v for k, v in values.items() if _is_output(k)}, classes
            )
            stored = {
                "logits": logits,
                **{f"feature_{i}": f for i, f in enumerate(outputs)},
            }
            x = teacher_cache.pack(_inputs(values), stored)
            return (x, values[_LABEL]) if _LABEL in values else x

        return decode

    @classmethod
    def build(
        cls,
        teacher,
        data,
        path,
        dtype="float16",
        top_k=None,
        teacher_layers=(),
        batch_size=256,
        samples_per_shard=None,
        overwrite=False,
        verbose=1,
    ):
        """Runs `teacher` once over `data` and writes its outputs to `path`.

        An interrupted build (the process killed, an error) leaves its
        complete shards and `build.json`; `build` run again with the same
        teacher, data and settings resumes after them: their data is read
        again and checked, but not given to the teacher.

        Args:
            teacher: The trained teacher (`keras.Model`).
            data: Inputs `x`, or `(x, y)`: numpy arrays, tensors or dicts of
                them, or a batched `tf.data.Dataset` of such elements in a
                fixed order. It is read once, batch by batch, so it may be
                larger than memory.
            path: The folder to write. It must be new or empty, or hold a
                store or an interrupted build (see `overwrite`).
            dtype: `"float16"` or `"float32"`, of the stored outputs.
                Defaults to `"float16"`.
            top_k: Number of logits kept per sample (see `TeacherCache`),
                or `None` for all. Defaults to `None`.
            teacher_layers: Names of the teacher layers whose outputs the
                feature losses read. Defaults to `()`.
            batch_size: Samples per teacher call. Defaults to `256`.
            samples_per_shard: Samples per shard, a multiple of
                `batch_size`; `None` makes shards of about 128 MiB. Defaults
                to `None`.
            overwrite: Whether a complete store in `path`, or an
                interrupted build of another store, may be replaced. Other
                files are never deleted. Defaults to `False`.
            verbose: Whether to show a progress bar. Defaults to `1`.

        Returns:
            The `TeacherStore`.
        """
        storage = teacher_cache.TeacherCache(dtype, top_k)
        batch_size = check_integer("batch_size", batch_size, 1)
        if samples_per_shard is not None:
            samples_per_shard = check_integer(
                "samples_per_shard", samples_per_shard, 1
            )
        if samples_per_shard is not None and samples_per_shard % batch_size:
            raise ValueError(
                f"samples_per_shard must be a multiple of batch_size "
                f"({batch_size}). Received: "
                f"samples_per_shard={samples_per_shard}"
            )
        shape = output_shape(teacher, "teacher")
        if top_k is not None and shape and top_k > shape[-1]:
            raise ValueError(
                f"top_k must be at most the number of classes ({shape[-1]}). "
                f"Received: top_k={top_k}"
            )
        view = ModelView(teacher, list(teacher_layers), "teacher")
        settings = {
            "format": _FORMAT,
            "teacher": _model_fingerprint(teacher),
            "dtype": dtype,
            "top_k": top_k,
            "teacher_layers": list(teacher_layers),
            "batch_size": batch_size,
        }
        builder = _Builder(Path(path), settings, samples_per_shard, overwrite)
        builder.write(view, storage, data, verbose)
        return cls(path)


def _hash(digest, x, y):
    for _, array in _sample_fields(x, y):
        digest.update(np.ascontiguousarray(array).tobytes())


def _shard_digest(shard):
    """`(SHA-256 of a shard's samples, their number)` from its batches."""
    digest, samples = hashlib.sha256(), 0
    for x, y in shard:
        _hash(digest, x, y)
        samples += _count(x)
    return digest.hexdigest(), samples


class _Builder:
    """Writes a store's shards and manifest; resumes an interrupted build."""

    def __init__(self, path, settings, samples_per_shard, overwrite):
        self.path = path
        self.state = {
            **settings,
            "samples_per_shard": samples_per_shard,
            "layout": None,
            "classes": None,
            "shards": [],
        }
        self._prepare_folder(overwrite)

    def _prepare_folder(self, overwrite):
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(
                f"path must be a folder. Received: path={str(self.path)!r}, "
                "a file."
            )
        self.path.mkdir(parents=True, exist_ok=True)
        ours = [p for p in self.path.iterdir() if _is_store_file(p.name)]
        others = sorted(
            p.name for p in self.path.iterdir() if not _is_store_file(p.name)
        )
        if others:
            raise ValueError(
                f"{str(self.path)!r} holds files that are not a "
                f"TeacherStore's ({', '.join(others[:3])}); nothing was "
                "written. Choose a new or empty folder."
            )
        progress = self.path / PROGRESS
        if (self.path / MANIFEST).exists() and not overwrite:
            raise FileExistsError(
                f"{str(self.path)!r} holds a TeacherStore; pass "
                "overwrite=True to replace it."
            )
        if progress.exists() and not (self.path / MANIFEST).exists():
            previous = json.loads(progress.read_text())
            differ = [
                key
                for key, value in self.state.items()
                if key not in ("layout", "classes", "shards")
                and value is not None
                and previous.get(key) != value
            ]
            if not differ:
                self.state = previous
                return
            if not overwrite:
                raise ValueError(
                    f"{str(self.path)!r} holds an interrupted build of "
                    f"another store (its {', '.join(differ)} differ). Pass "
                    "the same teacher and settings to resume it, or "
                    "overwrite=True to start again."
                )
        for file in ours:
            file.unlink()

    def _save_state(self, name):
        temporary = self.path / f".{name}.tmp"
        temporary.write_text(json.dumps(self.state, indent=1))
        os.replace(temporary, self.path / name)

    def write(self, view, storage, data, verbose):
        def teacher_outputs(x):
            outputs = view(x)
            return [outputs.logits, *outputs.features]

        teacher_outputs = tf.function(teacher_outputs)
        samples, batches = _batches(data, self.state["batch_size"])
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            raise ValueError(
                "data must hold at least one sample. Received none."
            )
        if self.state["samples_per_shard"] is None:
            self.state["samples_per_shard"] = self._shard_samples(*first)
        teacher_cache.trace_for_any_batch(teacher_outputs, first[0])
        done = len(self.state["shards"])
        if verbose:
            print(
                f"kd_keras: writing the teacher's outputs to {self.path}"
                + (f" (resuming after {done} shard(s))" if done else "")
            )
        self.progress = (
            keras.utils.Progbar(samples, unit_name="sample")
            if verbose
            else None
        )
        self.count = self.written = 0
        shards = _shards_of(
            itertools.chain([first], batches),
            self.state["samples_per_shard"],
        )
        for index, shard in shards:
            if index < done:
                self._check_resumed(index, shard)
            else:
                self._write_shard(index, shard, teacher_outputs, storage)
        if self.count != sum(s["samples"] for s in self.state["shards"]):
            raise ValueError(
                f"data is shorter than the interrupted build in "
                f"{str(self.path)!r}: it is other data. Pass the same data "
                "to resume it, or overwrite=True to start again."
            )
        self.state["samples"] = self.count
        self._save_state(MANIFEST)
        (self.path / PROGRESS).unlink()
        if verbose:
            if samples is None:
                self.progress.update(self.count, finalize=True)
            print(
                f"kd_keras: {self.count} samples in "
                f"{len(self.state['shards'])} shard(s); "
                f"{self.written / 2**20:.1f} MiB written"
            )

    def _write_shard(self, index, shard, teacher_outputs, storage):
        """Writes shard `index` under a temporary name, then renames it.

        While the teacher runs on a batch, a second thread checks, encodes
        and writes the previous one: the writing hides behind the teacher.
        """
        digest = hashlib.sha256()
        file = self.path / (_SHARD.format(index) + _PARTIAL)
        with open(file, "wb") as out, ThreadPoolExecutor(1) as writer:
            pending = None
            for x, y in shard:
                outputs = teacher_outputs(x)
                if pending is not None:
                    self._advance(*pending.result())
                pending = writer.submit(
                    self._append, out, digest, x, y, storage, outputs
                )
            self._advance(*pending.result())
            out.flush()
            os.fsync(out.fileno())
            samples = out.tell() // _record_dtype(self.state["layout"]).itemsize
        os.replace(file, self.path / _SHARD.format(index))
        self.state["shards"].append(
            {
                "file": _SHARD.format(index),
                "samples": samples,
                "data": digest.hexdigest(),
            }
        )
        self._save_state(PROGRESS)

    def _append(self, out, digest, x, y, storage, outputs):
        """Writes a batch's records to `out`; returns `(samples, bytes)`."""
        _hash(digest, x, y)
        finite.check_array("data", x, f" of a batch from sample {self.count}")
        records = self._records(x, y, storage, outputs)
        out.write(records.data)
        return len(records), records.nbytes

    def _advance(self, samples, nbytes):
        self.count += samples
        self.written += nbytes
        if self.progress:
            self.progress.update(self.count)

    def _records(self, x, y, storage, outputs):
        """The records of a batch: its samples and encoded teacher outputs."""
        outputs = [keras.ops.convert_to_numpy(o) for o in outputs]
        stored = storage.encode(outputs)
        finite.check_teacher_outputs(stored, storage.dtype)
        fields = [*_sample_fields(x, y), *stored.items()]
        if self.state["layout"] is None:
            self.state["layout"] = _layout(fields)
            self.state["classes"] = outputs[0].shape[-1]
        records = np.empty(len(outputs[0]), _record_dtype(self.state["layout"]))
        for name, value in fields:
            records[name] = value
        return records

    def _shard_samples(self, x, y):
        per_sample = sum(
            a.nbytes // max(len(a), 1) for _, a in _sample_fields(x, y)
        )
        batch = self.state["batch_size"]
        return max(1, _SHARD_BYTES // max(per_sample, 1) // batch) * batch

    def _check_resumed(self, index, shard):
        """Reads shard `index`'s data again and checks it is the data the
        interrupted build wrote there."""
        digest, samples = _shard_digest(shard)
        self._advance(samples, 0)
        if digest != self.state["shards"][index]["data"]:
            raise ValueError(
                "data differs from the data of the interrupted build in "
                f"{str(self.path)!r} (shard {index}). Pass the same data to "
                "resume it, or overwrite=True to start again."
            )


def _is_store_file(name):
    return name in (MANIFEST, PROGRESS) or (
        name.startswith(("shard-", "."))
        and name.endswith((".bin", _PARTIAL, ".tmp"))
    )
