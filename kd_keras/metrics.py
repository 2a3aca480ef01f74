"""Metrics that compare the student with its teacher."""

import keras
from keras import ops


def teacher_agreement(teacher_outputs, student_outputs):
    """1.0 where the student's top-1 class is the teacher's, else 0.0.

    Args:
        teacher_outputs: Teacher logits or probabilities `(batch, classes)`.
        student_outputs: Student logits or probabilities, same shape.

    Returns:
        One value per sample.

    Example:

    >>> agree = kd_keras.metrics.teacher_agreement(
    ...     [[2.0, 1.0], [0.0, 1.0]], [[0.9, 0.1], [0.8, 0.2]]
    ... )
    >>> [float(v) for v in agree]
    [1.0, 0.0]
    """
    return ops.cast(
        ops.equal(
            ops.argmax(teacher_outputs, axis=-1),
            ops.argmax(student_outputs, axis=-1),
        ),
        "float32",
    )


@keras.saving.register_keras_serializable(package="kd_keras")
class TeacherAgreement(keras.metrics.MeanMetricWrapper):
    """Fraction of samples where the student predicts the teacher's class.

    Called as `update_state(teacher_outputs, student_outputs)`.

    Args:
        name: Name of the metric. Defaults to `"teacher_agreement"`.
        dtype: Dtype of the result. Defaults to `None` (float32).

    Example:

    >>> metric = kd_keras.metrics.TeacherAgreement()
    >>> metric.update_state(
    ...     [[2.0, 1.0], [0.0, 1.0]], [[0.9, 0.1], [0.8, 0.2]]
    ... )
    >>> float(metric.result())
    0.5
    """

    def __init__(self, name="teacher_agreement", dtype=None):
        super().__init__(fn=teacher_agreement, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


__all__ = [
    "teacher_agreement",
    "TeacherAgreement",
]
