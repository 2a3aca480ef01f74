"""kd_keras: knowledge distillation for Keras 3 and TensorFlow."""

from kd_keras import (
    callbacks,
    chains,
    datasets,
    distribute,
    export,
    function_matching,
    labels,
    losses,
    methods,
    metrics,
    models,
    mutual,
    teachers,
)
from kd_keras.cache import TeacherCache
from kd_keras.chains import born_again, distill_chain, teacher_assistant_chain
from kd_keras.distiller import Distiller
from kd_keras.function_matching import FunctionMatching
from kd_keras.losses import distillation_loss
from kd_keras.mutual import MutualLearning
from kd_keras.saving import load_student

__version__ = "0.1.0"

__all__ = [
    "Distiller",
    "FunctionMatching",
    "MutualLearning",
    "TeacherCache",
    "born_again",
    "callbacks",
    "chains",
    "datasets",
    "distribute",
    "distill_chain",
    "export",
    "function_matching",
    "distillation_loss",
    "labels",
    "load_student",
    "losses",
    "methods",
    "metrics",
    "models",
    "mutual",
    "teacher_assistant_chain",
    "teachers",
]
