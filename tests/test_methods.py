"""The method registry behind `kd-keras distill --method`."""

import pytest

from kd_keras import methods

LAYERS = {"teacher_layer": "a", "student_layer": "b"}


@pytest.mark.parametrize("name", list(methods.METHODS))
def test_every_method_builds_its_loss(name):
    method = methods.METHODS[name]
    needs_layers = "teacher_layer" in method.parameters and name != "rkd"
    built, weights = methods.distillation_losses(
        name, temperature=3.0, **(LAYERS if needs_layers else {})
    )
    assert isinstance(built[0], method.loss) and weights == [method.weight]
    if method.tempered:
        assert built[0].temperature == 3.0


def test_paper_weights_and_defaults():
    (dkd,), _ = methods.distillation_losses("dkd", beta=2)
    assert dkd.beta == 2 and dkd.warmup == 1
    _, weights = methods.distillation_losses("fitnet", **LAYERS)
    assert weights == [100.0]
    _, weights = methods.distillation_losses("at", weight=5, **LAYERS)
    assert weights == [5]


def test_unknown_method_and_parameter():
    with pytest.raises(ValueError, match="Unknown method 'hint'"):
        methods.distillation_losses("hint")
    with pytest.raises(ValueError, match="kd has no parameter beta"):
        methods.distillation_losses("kd", beta=1)
    with pytest.raises(ValueError, match="fitnet: .*teacher_layer"):
        methods.distillation_losses("fitnet")


def test_parse_value():
    assert methods.parse_value("8") == 8
    assert methods.parse_value("0.5") == 0.5
    assert methods.parse_value("false") is False
    assert methods.parse_value("pool_1") == "pool_1"
