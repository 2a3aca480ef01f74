"""`kd_keras.distillation` in place of `keras.distillation` trains what
Keras trains: the same losses epoch by epoch and the same student weights,
up to float rounding."""

import keras
import numpy as np
import pytest
from conftest import make_data, make_mlp

from kd_keras import distillation

EPOCHS, BATCH_SIZE = 3, 16


def train(distiller):
    distiller.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x, y = make_data(samples=64)
    history = distiller.fit(
        x, y, epochs=EPOCHS, batch_size=BATCH_SIZE, shuffle=False, verbose=0
    )
    return history.history, distiller.student.get_weights()


@pytest.mark.parametrize("cache", [False, True])
def test_the_same_step_as_keras_distillation(teacher, cache):
    student = make_mlp(8, "student")
    twin = keras.models.clone_model(student)
    initial = student.get_weights()
    twin.set_weights(initial)
    # Keras computes Hinton's loss for a KLDivergence instance only.
    theirs = train(
        keras.distillation.Distiller(
            teacher=teacher,
            student=student,
            distillation_losses=keras.distillation.LogitsDistillation(
                temperature=3.0, loss=keras.losses.KLDivergence()
            ),
            student_loss_weight=0.5,
        )
    )
    # kd_keras' default loss is Hinton's.
    ours = train(
        distillation.Distiller(
            teacher=teacher,
            student=twin,
            distillation_losses=distillation.LogitsDistillation(
                temperature=3.0
            ),
            student_loss_weight=0.5,
            cache=cache,
        )
    )
    for name in ("loss", "total_loss", "student_loss", "distillation_loss"):
        assert len(ours[0][name]) == EPOCHS
        np.testing.assert_allclose(
            ours[0][name], theirs[0][name], rtol=1e-5, err_msg=name
        )
    # Training moved the weights, alike.
    assert not np.allclose(ours[1][0], initial[0], atol=1e-3)
    for mine, keras_weight in zip(ours[1], theirs[1], strict=True):
        np.testing.assert_allclose(mine, keras_weight, rtol=1e-4, atol=1e-6)
