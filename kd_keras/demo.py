"""The case study: a teacher, a student from scratch, a distilled student.

The teacher is the article's MLP (three hidden layers of 256), the student
an MLP with one hidden layer of 128. The scratch and distilled students
start from the same initial weights and get the same budget (epochs, batch
size, optimizer), so the difference between them is the teacher's.
"""

import keras
import numpy as np

from kd_keras import datasets, models
from kd_keras.distiller import Distiller
from kd_keras.metrics import teacher_agreement


def _hard_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def train_teacher(data, epochs=30, batch_size=64, seed=0, verbose=0):
    """Trains the case-study teacher on `data` and returns it."""
    (x_train, y_train), _ = data
    keras.utils.set_random_seed(seed)
    teacher = models.mlp_teacher(
        x_train.shape[1:], datasets.num_classes(y_train)
    )
    teacher.compile("adam", _hard_loss(), metrics=["accuracy"])
    teacher.fit(
        x_train,
        y_train,
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
    )
    return teacher


def train_students(
    data,
    teacher,
    epochs=10,
    batch_size=64,
    seed=0,
    alpha=0.1,
    temperature=4.0,
    verbose=0,
):
    """Trains the scratch and the distilled student from the same init.

    Returns:
        `(scratch, scratch_history, distilled, distilled_history)`.
    """
    (x_train, y_train), validation = data
    keras.utils.set_random_seed(seed)
    scratch = models.mlp_student(
        x_train.shape[1:], datasets.num_classes(y_train)
    )
    distilled = keras.models.clone_model(scratch)
    distilled.set_weights(scratch.get_weights())
    distilled.name = "mlp_student_distilled"
    fit_args = dict(
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation,
        verbose=verbose,
    )
    keras.utils.set_random_seed(seed)
    scratch.compile("adam", _hard_loss(), metrics=["accuracy"])
    scratch_history = scratch.fit(x_train, y_train, **fit_args)
    keras.utils.set_random_seed(seed)
    distiller = Distiller(
        teacher, distilled, alpha=alpha, temperature=temperature
    )
    distiller.compile("adam", metrics=["accuracy"])
    distilled_history = distiller.fit(x_train, y_train, **fit_args)
    return scratch, scratch_history, distilled, distilled_history


def accuracy(model, x, y):
    """Top-1 accuracy of `model` on `(x, y)`."""
    logits = model.predict(x, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def agreement(teacher, student, x):
    """Share of `x` where `student`'s top-1 class is `teacher`'s."""
    values = teacher_agreement(
        teacher.predict(x, verbose=0), student.predict(x, verbose=0)
    )
    return float(np.mean(keras.ops.convert_to_numpy(values)))
