"""Files written safely: never replaced silently, never left half-written.

Every file kd_keras writes (models, cards, reports, exports, stores'
manifests) goes through `atomic_path`, and every command checks the files
it will write with `check_free` before any work. Loads no TensorFlow, so
the command line checks its outputs before loading it.
"""

import contextlib
import os
import tempfile
from pathlib import Path

WRITABLE_EXTENSIONS = (".keras", ".h5", ".hdf5")


def check_extension(path):
    """Raises a `ValueError` unless Keras can write a model to `path`."""
    path = Path(path)
    if path.suffix not in WRITABLE_EXTENSIONS:
        raise ValueError(
            f"path must end in one of {', '.join(WRITABLE_EXTENSIONS)}. "
            f"Received: path={str(path)!r}"
        )


def check_free(paths, overwrite=False, remedy="pass overwrite=True"):
    """Raises a `FileExistsError` naming those of `paths` that exist,
    unless `overwrite`: nothing the user saved is replaced silently.

    Args:
        paths: The files (or folders) about to be written.
        overwrite: Whether they may be replaced. Defaults to `False`.
        remedy: What the message tells the user to do, in the words of
            the caller (`"pass --overwrite"` on the command line). Defaults
            to `"pass overwrite=True"`.
    """
    taken = [str(path) for path in map(Path, paths) if path.exists()]
    if taken and not overwrite:
        one = len(taken) == 1
        raise FileExistsError(
            f"{', '.join(taken)} {'exists' if one else 'exist'}; {remedy} "
            f"to replace {'it' if one else 'them'}."
        )


@contextlib.contextmanager
def atomic_path(path, overwrite=False):
    """Yields a temporary path beside `path`, renamed over it on success.

    A crash or an error while writing leaves `path` as it was and no
    temporary file behind.

    Args:
        path: The destination.
        overwrite: Whether an existing `path` may be replaced. Defaults to
            `False`.
    """
    path = Path(path)
    check_free([path], overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, and ending in the whole name: Keras reads the format from
    # compound extensions such as `.weights.h5`.
    handle, tmp = tempfile.mkstemp(
        prefix=".", suffix=f".{path.name}", dir=path.parent
    )
    os.close(handle)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
