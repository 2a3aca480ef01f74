"""kd_keras: knowledge distillation for Keras 3 and TensorFlow.

The public names are imported on first use (PEP 562): importing a
submodule that needs no TensorFlow, as `kd-keras --help` imports
`kd_keras.methods`, does not load it. In a process that has already
imported Keras they are imported at once, so that Keras finds the classes
kd_keras registers for saving (`keras.models.load_model("d.keras")`).
"""

import importlib
import sys

__version__ = "0.2.0"

__all__ = [
    "Distiller",
    "FunctionMatching",
    "MutualLearning",
    "TeacherCache",
    "TeacherStore",
    "born_again",
    "callbacks",
    "chains",
    "datasets",
    "distribute",
    "distill_chain",
    "distillation",
    "export",
    "function_matching",
    "distillation_loss",
    "images",
    "labels",
    "load_student",
    "losses",
    "methods",
    "metrics",
    "models",
    "mutual",
    "quiet",
    "teacher_assistant_chain",
    "teachers",
]

# The module defining each public name that is not a submodule.
_DEFINED_IN = {
    "Distiller": "distiller",
    "FunctionMatching": "function_matching",
    "MutualLearning": "mutual",
    "TeacherCache": "teacher_outputs",
    "TeacherStore": "teacher_outputs",
    "born_again": "chains",
    "distill_chain": "chains",
    "distillation_loss": "losses",
    "load_student": "saving",
    "teacher_assistant_chain": "chains",
}


# Names that need an extra (`pip install kd_keras[tune]`), imported only at
# their own first use, and left out of `__all__` so that `import *` works
# without the extra.
_EXTRAS = {"tune", "tuning"}


def __getattr__(name):
    """Imports a submodule alone, or every public name at the first
    access to a class or function."""
    if name in _EXTRAS:
        return _extra(name)
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _DEFINED_IN:
        return importlib.import_module(f"{__name__}.{name}")
    for public in __all__:
        if public in _DEFINED_IN:
            module = importlib.import_module(
                f"{__name__}.{_DEFINED_IN[public]}"
            )
            globals()[public] = getattr(module, public)
        else:
            importlib.import_module(f"{__name__}.{public}")
    return globals()[name]


def _extra(name):
    """`tune` or `tuning`. Without KerasTuner, `tuning` is no attribute
    and `tune` a function raising the `ImportError` that says what to
    install: `help()` and `dir()`-walking tools then read both."""
    try:
        tuning = importlib.import_module(f"{__name__}.tuning")
    except ImportError as error:
        if error.name != "keras_tuner":
            raise
        if name == "tuning":
            raise AttributeError(str(error), name=name) from error
        message = str(error)

        def tune(*args, **kwargs):
            """Needs KerasTuner: `pip install kd_keras[tune]`."""
            raise ImportError(message, name="keras_tuner")

        return tune
    return tuning if name == "tuning" else tuning.tune


def __dir__():
    return sorted({*globals(), *__all__, *_EXTRAS})


if "keras" in sys.modules:
    __getattr__("Distiller")
