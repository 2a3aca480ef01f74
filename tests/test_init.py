"""The package's face: what `import kd_keras` loads, and what `help()`,
`dir()` and IDEs see on an install with or without the extras."""

import subprocess
import sys

import pytest


def _run(code):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )


@pytest.mark.parametrize(
    "code, loaded",
    [
        ("import kd_keras", False),
        ("import keras, kd_keras", True),
        ("import kd_keras, keras; kd_keras.Distiller", True),
    ],
)
def test_the_package_loads_tensorflow_only_when_needed(code, loaded):
    """`import kd_keras` alone loads no TensorFlow; once Keras is loaded,
    Keras finds kd_keras' serializable classes (for `load_model`)."""
    probe = (
        "import sys, keras; print('tensorflow' in sys.modules, keras.saving."
        "get_registered_object('kd_keras>Distiller') is not None)"
    )
    result = _run(
        f"{code}\nimport sys\nprint('tensorflow' in sys.modules)\n" + probe
    )
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.split("\n")[-3:-1]
    assert before == str(loaded)
    assert after == f"True {loaded}"


def test_help_dir_and_import_star_work_without_keras_tuner():
    """`help()`, `inspect.getmembers` and `hasattr` walk every name `dir()`
    lists: without the `[tune]` extra they must not fail on `tune`, while
    calling `kd_keras.tune` says which extra to install; `import *` takes
    the names that need no extra."""
    result = _run(
        """
import sys
sys.modules["keras_tuner"] = None  # as if it were not installed
import inspect, pydoc
import kd_keras
assert "Distiller" in pydoc.render_doc(kd_keras)
names = dict(inspect.getmembers(kd_keras))
print(sorted({"Distiller", "losses"} - set(names)))
print(hasattr(kd_keras, "tune"), hasattr(kd_keras, "tuning"))
try:
    kd_keras.tune(None, None, None, None)
except ImportError as error:
    print(error)
from kd_keras import *
print(Distiller.__name__, TeacherStore.__name__)
"""
    )
    assert result.returncode == 0, result.stderr
    missing, found, message, star = result.stdout.splitlines()[-4:]
    assert missing == "[]"
    assert found == "True False"
    assert "pip install kd_keras[tune]" in message
    assert star == "Distiller TeacherStore"
