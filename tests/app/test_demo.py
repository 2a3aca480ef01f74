"""The demo's scenario: its labelled samples and its verdict."""

import numpy as np
import pytest

from kd_keras.app import demo


def test_default_labels():
    assert demo.default_labels(np.arange(60_000) % 10) == 600
    assert demo.default_labels(np.arange(1_437) % 10) == 50


@pytest.mark.parametrize(
    "accuracies,expected",
    [
        (
            {
                "teacher": 0.98,
                "student_scratch": 0.88,
                "student_distilled": 0.96,
            },
            "Distillation helped: the distilled student scores 0.9600 on the "
            "test set, +8.0 points over its scratch twin (0.8800), closing "
            "80% of the gap to the teacher (0.9800).",
        ),
        (
            {
                "teacher": 0.98,
                "student_scratch": 0.90,
                "student_distilled": 0.89,
                "student_pseudo": 0.91,
            },
            "Distillation hurt: the distilled student scores 0.8900 on the "
            "test set, 1.0 points below its scratch twin (0.9000); the "
            "teacher scores 0.9800. The teacher's top-class pseudo-labels "
            "alone gave 0.9100 (-2.0 points for the soft targets).",
        ),
        (
            {
                "teacher": 0.85,
                "student_scratch": 0.88,
                "student_distilled": 0.88,
            },
            "Distillation made no difference: the distilled student scores "
            "0.8800 on the test set, its scratch twin 0.8800; the teacher "
            "(0.8500) is no better than the scratch student, so there was no "
            "gap to close.",
        ),
        (
            {
                "teacher": 0.98,
                "student_scratch": 0.9001,
                "student_distilled": 0.9003,
            },
            "Distillation made no difference: the distilled student scores "
            "0.9003 on the test set, its scratch twin 0.9001; the teacher "
            "scores 0.9800.",
        ),
        (
            {
                "teacher": 0.90,
                "student_scratch": 0.85,
                "student_distilled": 0.91,
            },
            "Distillation helped: the distilled student scores 0.9100 on the "
            "test set, +6.0 points over its scratch twin (0.8500), overtaking "
            "the teacher (0.9000).",
        ),
    ],
)
def test_verdict(accuracies, expected):
    assert demo.verdict(accuracies) == expected
