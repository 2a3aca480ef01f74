"""Saving and loading students as plain Keras files."""

import contextlib
import json
import logging
import math
import os
import re
import tempfile
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
    """Saves `model` to `path` atomically, if Keras can load it back.

    The write is atomic (see `kd_keras.files.atomic_path`). Before the
    file written takes the place of `path`, it is loaded back (as
    `load_student` would) and must hold as many weights and parameters as
    `model`. Keras cannot rebuild some models from the legacy `.h5`
    format (`keras.applications.MobileNetV3Small`, for one); such a file is
    deleted and `path` left as it was. The check costs a load: 20-50 ms
    for a small MLP, 0.5-1.2 s for a MobileNetV3Small saved as `.keras`
    (whose save alone takes 0.2-0.4 s) on 2 busy cores.

    Args:
        model: The `keras.Model` to save.
        path: Destination ending in `.keras`, `.h5` or `.hdf5`.
        overwrite: Whether an existing file may be replaced. Defaults to
            `False`.

    Returns:
        The `Path` written.

    Raises:
        ValueError: Keras cannot load the file back; the message says
            whether `.keras` would do.

    Example:

    ```python
    kd_keras.saving.save_model(student, "student.keras", overwrite=True)
    ```
    """
    path = Path(path)
    check_extension(path)
    with atomic_path(path, overwrite) as tmp:
        _save_checked(model, tmp, path)
    return path


def check_format(model, path):
    """Checks, without writing `path`, that `save_model` could save there.

    Raises the `ValueError` of `save_model` if Keras could not load `model`
    back from a file of `path`'s format. For a check before training: the
    model is saved to a trial file beside `path`, loaded back and deleted.

    Args:
        model: The `keras.Model` to save later.
        path: Its destination, ending in `.keras`, `.h5` or `.hdf5`.

    Example:

    ```python
    kd_keras.saving.check_format(student, "student.h5")  # before fit
    ```
    """
    path = Path(path)
    check_extension(path)
    handle, trial = tempfile.mkstemp(
        prefix=".", suffix=f".trial{path.suffix}", dir=path.parent
    )
    os.close(handle)
    try:
        _save_checked(model, trial, path)
    finally:
        os.unlink(trial)


def _save_checked(model, filepath, path):
    """Saves `model` to `filepath` and loads it back; raises, naming
    `path`, the destination, if Keras cannot."""
    # A deployed student needs no optimizer state; `.keras` always has it.
    options = {} if path.suffix == ".keras" else {"include_optimizer": False}
    compat.cache_saving_skipsets()
    with _quiet_hdf5_notice():
        model.save(filepath, **options)
        reason = _load_back_failure(model, filepath)
    if reason is not None:
        raise _unloadable_save(model, path, reason)


# Keras' version as its messages should name it, e.g. "3.15".
_KERAS_VERSION = ".".join(keras.__version__.split(".")[:2])


def _reason(error):
    """Keras' `error` in a few words: the first sentence of its innermost
    message (Keras nests them after "Exception encountered:"), without the
    configs it dumps."""
    text = str(error).split("Exception encountered:")[-1].strip()
    line = text.splitlines()[0] if text else ""
    sentence = re.split(r"[:=] ?[{\[]", line.split(". ")[0])[0]
    sentence = sentence.strip().rstrip(".")
    if len(sentence) > 200:
        sentence = sentence[:199] + "…"
    if not sentence:
        return type(error).__name__
    if isinstance(error, ValueError):
        return sentence
    return f"{type(error).__name__}: {sentence}"


def _weight_sizes(model):
    """The number of weights of `model` and of their parameters."""
    weights = model.weights
    return len(weights), sum(math.prod(w.shape) for w in weights)


def _load_back(filepath):
    """`keras.models.load_model(filepath)` as `load_student` would: in safe
    mode, or with `safe_mode=False` for a file safe mode refuses by design
    (a `Lambda` layer) and the user loads after trusting it."""
    try:
        return keras.models.load_model(filepath, compile=False)
    except ValueError as error:
        if "safe_mode=False" not in str(error):
            raise
    # The file was just written from this process's own model.
    return keras.models.load_model(filepath, compile=False, safe_mode=False)


def _load_back_failure(model, filepath):
    """Why Keras cannot load `filepath`, just written from `model`, back
    with all its weights: a few words, or `None` when it can.

    Also `None` when only custom objects unregistered in this process are
    missing: the file is sound, and `load_student` names them. Errors
    reading the file (`OSError`) propagate.
    """
    try:
        loaded = _load_back(filepath)
    except (OSError, MemoryError):
        raise
    except Exception as error:
        if _UNKNOWN_OBJECT.search(str(error)):
            return None
        return _reason(error)
    expected, found = _weight_sizes(model), _weight_sizes(loaded)
    if found == expected:
        return None
    return (
        f"it comes back with {found[1]:,} parameters in {found[0]} "
        f"weights, not {expected[1]:,} in {expected[0]}"
    )


def _keras_file_loads_back(model, folder):
    """Whether `model` saved as `.keras` loads back (a trial file in
    `folder`, deleted)."""
    handle, trial = tempfile.mkstemp(
        prefix=".", suffix=".trial.keras", dir=folder
    )
    os.close(handle)
    try:
        model.save(trial)
        return _load_back_failure(model, trial) is None
    except Exception:
        return False
    finally:
        os.unlink(trial)


def _unloadable_save(model, path, reason):
    """The `ValueError` refusing to save `model` to `path`, whose file
    Keras cannot load back for `reason`."""
    if path.suffix != ".keras" and _keras_file_loads_back(model, path.parent):
        remedy = (
            f"save it as .keras instead ({str(path.with_suffix('.keras'))!r})"
        )
    else:
        remedy = (
            "make the model serializable (named functions rather than "
            "lambdas; custom layers whose get_config returns every "
            "argument of their __init__)"
        )
        if path.suffix != ".keras":
            remedy = f"it does not load back from .keras either; {remedy}"
    return ValueError(
        f"Keras {_KERAS_VERSION} cannot load back the {path.suffix} file of "
        f"model {model.name!r} ({reason}), so nothing was written to "
        f"{str(path)!r}: {remedy}."
    )


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


def _read(item):
    """Reads an HDF5 dataset whole (its bytes checked); returns `None`."""
    if isinstance(item, h5py.Dataset):
        item[()]


def _is_intact(path):
    """Whether the model file `path` holds its weights and every byte of it
    reads back: each entry of a `.keras` archive matches its checksum, each
    array of an `.h5` file reads whole. A file that is intact and that
    Keras still cannot load holds a model Keras cannot rebuild, not
    damage."""
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                return (
                    "model.weights.h5" in archive.namelist()
                    and archive.testzip() is None
                )
        with h5py.File(path, "r") as f:
            if "model_weights" not in f:
                return False
            # visititems stops at a callback's first value other than None.
            f.visititems(lambda _, item: _read(item))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return False
    return True


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
    if _is_intact(path):
        remedy = "build the model in code and load these weights"
        if path.suffix != ".keras":
            remedy = "save the model as .keras instead, or build it in code "
            remedy += "and load these weights"
        return ValueError(
            f"{str(path)!r} is a well-formed {path.suffix} model file, but "
            f"Keras {_KERAS_VERSION} cannot rebuild this model from it "
            f"({_reason(error)}); {remedy} with "
            f"model.load_weights({str(path)!r})."
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
            `safe_mode=True`; or it is well-formed but Keras cannot
            rebuild its model from it (some models in `.h5`).

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
    except MemoryError:
        raise
    except Exception as error:
        raise _load_error(path, error) from None


__all__ = [
    "ReliableSaving",
    "save_model",
    "check_format",
    "save_weights",
    "load_student",
]
