"""Saving and loading students as plain Keras files."""

import contextlib
import json
import logging
import os
import re
import zipfile
from pathlib import Path

import h5py
import keras

from kd_keras import compat
from kd_keras.files import atomic_path, check_extension


class _DropHDF5Notice(logging.Filter):
    def filter(self, record):
        return "HDF5 file" not in record.getMessage()


@contextlib.contextmanager
def _quiet_hdf5_notice():
    """Hides Keras' notice that `.h5` is legacy: `.h5` is asked for here."""
    logger, notice_filter = logging.getLogger("absl"), _DropHDF5Notice()
    logger.addFilter(notice_filter)
    try:
        yield
    finally:
        logger.removeFilter(notice_filter)


def _local_file(filepath):
    """Whether `filepath` names a local file (not a URL, a stream...)."""
    return isinstance(filepath, (str, os.PathLike)) and (
        "://" not in os.fspath(filepath)
    )


class ReliableSaving:
    """Mixin making a model's saves atomic and its training resumable.

    `save` and `save_weights` write to a temporary file renamed over the
    destination (see `atomic_path`): a crash while saving, during a
    `keras.callbacks.ModelCheckpoint` or `BackupAndRestore` write for
    example, leaves the previous file whole.

    Keras saves the variables of layers but not the states of their
    `keras.random.SeedGenerator`s (dropout, random augmentation). A run
    resumed from a weights file, as `keras.callbacks.BackupAndRestore`
    does, would then draw the random numbers of its first steps again and
    train differently from a run never interrupted. The model saves them
    beside its own variables, as `seed_<i>`; files without them still load.

    Example:

    ```python
    distiller = kd_keras.Distiller(teacher, student)  # a ReliableSaving
    distiller.save_weights("backup.weights.h5")  # atomic, with seed states
    ```
    """

    def save(self, filepath, overwrite=True, **kwargs):
        """`keras.Model.save`, atomic for a local file."""
        compat.cache_saving_skipsets()
        if not _local_file(filepath) or kwargs.get("zipped") is False:
            return super().save(filepath, overwrite=overwrite, **kwargs)
        with atomic_path(filepath, overwrite) as tmp:
            super().save(tmp, overwrite=True, **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """`keras.Model.save_weights`, atomic for a local file."""
        compat.cache_saving_skipsets()
        if not _local_file(filepath):
            return super().save_weights(filepath, overwrite, **kwargs)
        with atomic_path(filepath, overwrite) as tmp:
            super().save_weights(tmp, overwrite=True, **kwargs)

    def _seed_states(self):
        weights = {id(w) for w in self.weights}
        return [v for v in self.variables if id(v) not in weights]

    def save_own_variables(self, store):
        super().save_own_variables(store)
        for i, state in enumerate(self._seed_states()):
            store[f"seed_{i}"] = state

    def load_own_variables(self, store):
        keys = list(store.keys())
        seeds = {key for key in keys if key.startswith("seed_")}
        super().load_own_variables(
            {key: store[key] for key in keys if key not in seeds}
        )
        for i, state in enumerate(self._seed_states()):
            if f"seed_{i}" in seeds:
                state.assign(store[f"seed_{i}"])


def save_model(model, path, overwrite=False):
    """Saves `model` to `path` atomically (see `atomic_path`).

    Args:
        model: The `keras.Model` to save.
        path: Destination ending in `.keras`, `.h5` or `.hdf5`.
        overwrite: Whether an existing file may be replaced. Defaults to
            `False`.

    Returns:
        The `Path` written.

    Example:

    ```python
    kd_keras.saving.save_model(student, "student.keras", overwrite=True)
    ```
    """
    path = Path(path)
    check_extension(path)
    # A deployed student needs no optimizer state; `.keras` always has it.
    options = {} if path.suffix == ".keras" else {"include_optimizer": False}
    compat.cache_saving_skipsets()
    with atomic_path(path, overwrite) as tmp, _quiet_hdf5_notice():
        model.save(tmp, **options)
    return path


def save_weights(model, path, overwrite=False):
    """Saves the weights of `model` to `path` atomically.

    Args:
        model: The `keras.Model` whose weights to save.
        path: Destination ending in `.weights.h5`.
        overwrite: Whether an existing file may be replaced. Defaults to
            `False`.

    Returns:
        The `Path` written.

    Example:

    ```python
    kd_keras.saving.save_weights(student, "student.weights.h5")
    student.load_weights("student.weights.h5")
    ```
    """
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(
            f"path must end in .weights.h5. Received: path={str(path)!r}"
        )
    compat.cache_saving_skipsets()
    with atomic_path(path, overwrite) as tmp:
        model.save_weights(tmp, overwrite=True)
    return path


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"
# Keras' messages for a class or function it cannot find.
_UNKNOWN_OBJECT = re.compile(
    r"Unknown \w+: '([^']+)'|Could not locate (?:class|function) '([^']+)'"
)
_REGISTERED_NAME = re.compile(r"'registered_name': '([^']+)'")


def _file_format(path):
    """`"hdf5"`, `"zip"`, `"empty"` or `None`, from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(len(_HDF5_SIGNATURE))
    if not head:
        return "empty"
    if head == _HDF5_SIGNATURE:
        return "hdf5"
    if head.startswith(_ZIP_SIGNATURE):
        return "zip"
    return None


def _check_format(path):
    """Raises a `ValueError` saying what `path` holds unless Keras reads it."""
    found = _file_format(path)
    expected = "zip" if path.suffix == ".keras" else "hdf5"
    if found == expected:
        return
    if found == "empty":
        reason = "it is empty (0 bytes)"
    elif found == "hdf5":
        reason = "it is an HDF5 file; rename it to .h5"
    elif found == "zip":
        reason = "it is a zip archive, not HDF5 (a .keras model renamed?)"
    else:
        reason = f"it is not {'a zip' if expected == 'zip' else 'an HDF5'} file"
    raise ValueError(
        f"Cannot read the model file {str(path)!r}: {reason}. A "
        f"{path.suffix} model is written by model.save or save_student."
    )


def _read_config(path):
    """The model config stored in a `.keras` or `.h5` file."""
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "config.json" not in names:
                raise ValueError(
                    "the archive has no config.json; it holds "
                    f"{names[:5]}, not a .keras model"
                )
            config = json.loads(archive.read("config.json"))
    else:
        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
            if config is None:
                raise ValueError(
                    "it holds weights only, no model config (load it with "
                    "model.load_weights)"
                )
            if isinstance(config, bytes):
                config = config.decode("utf-8")
            config = json.loads(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("its model config is not a Keras model config")
    return config


def _lambda_layer_names(config):
    """Names of the `Lambda` layers anywhere in a serialized config."""
    names = []
    if isinstance(config, dict):
        if config.get("class_name") == "Lambda":
            names.append(config.get("config", {}).get("name", "?"))
        for value in config.values():
            names.extend(_lambda_layer_names(value))
    elif isinstance(config, list):
        for value in config:
            names.extend(_lambda_layer_names(value))
    return names


def _load_error(path, error):
    """The `ValueError` to raise for Keras' `error` on loading `path`."""
    unknown = _UNKNOWN_OBJECT.search(str(error))
    if unknown:
        # `.keras` files look custom objects up by their registered name.
        registered = _REGISTERED_NAME.search(str(error), unknown.end())
        name = (registered or unknown).group(1) or unknown.group(2)
        short = name.split(">")[-1]
        return ValueError(
            f"{str(path)!r} uses the custom object {name!r}, which is not "
            "registered in this process. Import the module that defines "
            "it (decorated with keras.saving.register_keras_serializable) "
            f"or pass custom_objects={{{name!r}: {short}}}."
        )
    first_line = str(error).strip().splitlines()[0] if str(error) else ""
    return ValueError(
        f"Cannot load the model file {str(path)!r}: it is corrupt, "
        f"truncated or not a Keras model ({type(error).__name__}: "
        f"{first_line[:300]})."
    )


def load_student(path, safe_mode=True, compile=False, custom_objects=None):
    """Loads a student saved by `Distiller.save_student` (or any Keras model).

    The file is checked before Keras reads it, so a bad file fails with a
    `ValueError` naming it and saying what is wrong.

    Args:
        path: A `.keras`, `.h5` or `.hdf5` file.
        safe_mode: Whether to refuse models with `Lambda` layers, whose
            Python code would run on load. Pass `False` only for files you
            trust. Defaults to `True`.
        compile: Whether to restore the training configuration saved with
            the model. Defaults to `False`.
        custom_objects: Dict mapping the names of custom layers, losses or
            functions the model uses to their classes or functions, for
            those not registered with
            `keras.saving.register_keras_serializable`. Defaults to `None`.

    Returns:
        The `keras.Model`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: The file is empty, corrupt, truncated, of another
            format than its extension says, not a Keras model, uses an
            unknown custom object, or holds a `Lambda` layer under
            `safe_mode=True`.

    Example:

    ```python
    distiller.save_student("student.h5")
    student = kd_keras.load_student("student.h5")
    ```
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{str(path)!r} is a folder, not a model file (a TensorFlow "
            "SavedModel? Keras 3 loads those with keras.layers.TFSMLayer)."
        )
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {str(path)!r}.")
    check_extension(path)
    _check_format(path)
    try:
        config = _read_config(path)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"Cannot read the model file {str(path)!r}: it is corrupt, "
            f"truncated or not a Keras model ({error})."
        ) from None
    lambdas = _lambda_layer_names(config)
    if safe_mode and lambdas:
        raise ValueError(
            f"{str(path)!r} contains Lambda layer(s) {lambdas}, whose Python "
            "code would run on load, so it is refused under safe_mode=True. "
            "If you trust the file, pass safe_mode=False (on the kd-keras "
            "command line: --unsafe)."
        )
    try:
        return keras.models.load_model(
            path,
            safe_mode=safe_mode,
            compile=compile,
            custom_objects=custom_objects,
        )
    except (
        OSError,
        KeyError,
        ValueError,
        TypeError,
        zipfile.BadZipFile,
    ) as error:
        raise _load_error(path, error) from None


__all__ = [
    "ReliableSaving",
    "save_model",
    "save_weights",
    "load_student",
]
