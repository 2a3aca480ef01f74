"""The case study: a teacher, a student from scratch, a distilled student.

The teacher is the article's MLP (three hidden layers of 256), the student
an MLP with one hidden layer of 128. Scratch and distilled students start
from copies of the same initial weights and get the same budget (epochs,
batch size, optimizer, data order), so the difference between them is the
teacher's.
"""

import keras
import numpy as np

from kd_keras import datasets, models
from kd_keras.distiller import Distiller
from kd_keras.metrics import teacher_agreement


def _hard_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _fit_args(data, epochs, batch_size, verbose):
    return dict(
        epochs=epochs,
        batch_size=batch_size,
        validation_data=data[1],
        verbose=verbose,
    )


def train_teacher(data, epochs=30, batch_size=64, seed=0, verbose=0):
    """Trains the case-study teacher on `data` and returns it."""
    (x_train, y_train), _ = data
    keras.utils.set_random_seed(seed)
    teacher = models.mlp_teacher(
        x_train.shape[1:], datasets.num_classes(y_train)
    )
    teacher.compile("adam", _hard_loss(), metrics=["accuracy"])
    teacher.fit(x_train, y_train, **_fit_args(data, epochs, batch_size, 0))
    return teacher


def new_student(data, seed=0):
    """The case-study student, initialised from `seed`."""
    (x_train, y_train), _ = data
    keras.utils.set_random_seed(seed)
    return models.mlp_student(x_train.shape[1:], datasets.num_classes(y_train))


def copy_model(model, name):
    """A copy of `model` with the same weights, named `name`."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.name = name
    return copy


def train_scratch(student, data, epochs=20, batch_size=64, seed=0, verbose=0):
    """Trains `student` on the labels alone; returns its `History`."""
    keras.utils.set_random_seed(seed)
    student.compile("adam", _hard_loss(), metrics=["accuracy"])
    x_train, y_train = data[0]
    return student.fit(
        x_train, y_train, **_fit_args(data, epochs, batch_size, verbose)
    )


def distill(
    teacher,
    student,
    data,
    epochs=20,
    batch_size=64,
    seed=0,
    alpha=0.1,
    temperature=4.0,
    verbose=0,
):
    """Trains `student` from `teacher` with Hinton KD; returns its `History`."""
    keras.utils.set_random_seed(seed)
    distiller = Distiller(
        teacher, student, alpha=alpha, temperature=temperature
    )
    distiller.compile("adam", metrics=["accuracy"])
    x_train, y_train = data[0]
    return distiller.fit(
        x_train, y_train, **_fit_args(data, epochs, batch_size, verbose)
    )


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
