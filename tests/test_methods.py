"""The method registry behind `kd-keras distill --method`."""

import inspect

import pytest

from kd_keras import methods

EMPTY = inspect.Parameter.empty

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
    (dkd,), _ = methods.distillation_losses("dkd", nckd_weight=2)
    assert dkd.nckd_weight == 2 and dkd.warmup == 1
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


def test_one_registry_of_losses_and_schemes():
    assert list(methods.REGISTRY) == [*methods.METHODS, *methods.SCHEMES]
    assert set(methods.SCHEMES) == {
        "born_again",
        "takd",
        "dml",
        "function_matching",
    }
    for name, method in methods.REGISTRY.items():
        assert method.name == name and method.summary
        assert method.is_scheme == (method.loss is None)
    assert [m for m in methods.REGISTRY.values() if not m.teacher] == [
        methods.REGISTRY["dml"]
    ]


@pytest.mark.parametrize("name", list(methods.METHODS))
def test_a_loss_method_names_its_required_arguments(name):
    """`required` (shown by --help) is what the loss class cannot do
    without, and its defaults are arguments of the class."""
    method = methods.METHODS[name]
    signature = inspect.signature(method.loss.__init__).parameters
    without_default = [
        p for p in method.parameters if signature[p].default is EMPTY
    ]
    assert list(method.required) == without_default
    assert set(method.defaults) <= set(method.parameters)


def test_schemes_check_their_parameters():
    methods.check_scheme("born_again", {"generations": 3})
    assert methods.SCHEMES["function_matching"].parameters == [
        "mixup_alpha",
        "shift",
    ]
    with pytest.raises(
        ValueError, match="dml has no parameter size. Its parameters: peers"
    ):
        methods.check_scheme("dml", {"size": 2})
    with pytest.raises(
        ValueError, match="Unknown scheme 'kd'. Choose one of: born_again"
    ):
        methods.check_scheme("kd", {})
    with pytest.raises(ValueError, match="dml is a scheme, not a loss"):
        methods.distillation_losses("dml")


def test_parse_value():
    assert methods.parse_value("8") == 8
    assert methods.parse_value("0.5") == 0.5
    assert methods.parse_value("false") is False
    assert methods.parse_value("pool_1") == "pool_1"
