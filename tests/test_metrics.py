import keras
import numpy as np

from kd_keras import metrics


def test_teacher_agreement_hand_computed():
    teacher = np.array([[3.0, 1.0], [0.0, 2.0], [5.0, 4.0], [0.1, 0.2]])
    student = np.array([[2.0, 1.0], [1.0, 0.0], [9.0, 1.0], [0.0, 0.3]])
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(metrics.teacher_agreement(teacher, student)),
        [1.0, 0.0, 1.0, 1.0],
    )
    metric = metrics.TeacherAgreement()
    metric.update_state(teacher, student, sample_weight=[1, 1, 0, 2])
    assert float(metric.result()) == 0.75  # (1 + 0 + 2) / 4


def test_teacher_agreement_round_trip():
    metric = metrics.TeacherAgreement(name="agree")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(metric)
    )
    assert isinstance(restored, metrics.TeacherAgreement)
    assert restored.name == "agree"
