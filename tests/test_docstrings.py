"""Every public object has a Keras-style docstring, and its examples run.

A docstring has a one-line summary, `Args:` naming every argument (those
with a default end "Defaults to ..."), an `Example:` with a `>>>` or
```` ```python ```` block, a `Formula:` for the losses and `References:`
with a paper link for the methods that come from a paper.

A function of `kd_keras.losses` may instead name the loss class it is the
functional form of, as Keras documents `KLDivergence` fully and
`kl_divergence` briefly: "see `KD`" stands for the `Formula:` and
`References:` of the class `kd_keras.losses.KD`, which must have them
itself.
"""

import doctest
import importlib
import inspect
import math
import re

import keras
import numpy as np
import pytest

import kd_keras

MODULES = (
    "callbacks",
    "chains",
    "datasets",
    "export",
    "function_matching",
    "images",
    "losses",
    "methods",
    "metrics",
    "models",
    "mutual",
    "quiet",
    "saving",
    "teachers",
    "tuning",
)
# Base classes to subclass: no formula or paper of their own.
LOSS_BASES = {"DistillationLoss", "TemperatureLoss"}
# Objects implementing a published method.
PAPERS = {
    "kd_keras.Distiller",
    "kd_keras.FunctionMatching",
    "kd_keras.MutualLearning",
    "kd_keras.born_again",
    "kd_keras.teacher_assistant_chain",
    "kd_keras.distillation_loss",
    "kd_keras.teachers.EnsembleAverage",
    "kd_keras.teachers.ensemble",
} | {
    f"kd_keras.losses.{name}"
    for name in kd_keras.losses.__all__
    if name not in LOSS_BASES | {"SoftenedLoss"}
}


def _defined_in(module):
    """The module's public names: its `__all__`, which every module of the
    API declares (the rest are helpers other modules use)."""
    assert hasattr(module, "__all__"), f"{module.__name__} has no __all__"
    return module.__all__


def public_objects():
    """`{qualified name: object}` of the public API."""
    found = {
        f"kd_keras.{name}": getattr(kd_keras, name)
        for name in kd_keras.__all__
        if not inspect.ismodule(getattr(kd_keras, name))
    }
    for module_name in MODULES:
        module = importlib.import_module(f"kd_keras.{module_name}")
        for name in _defined_in(module):
            qualified = f"kd_keras.{module_name}.{name}"
            value = getattr(module, name)
            # Constants (`NAMES`, `REGISTRY`) are documented by their module.
            if inspect.ismodule(value) or not callable(value):
                continue
            # One entry per object, under the first name found for it.
            if all(value is not other for other in found.values()):
                found[qualified] = value
    return found


PUBLIC = public_objects()


def sections(doc):
    """`{section title: body}` of a Google-style docstring."""
    parts = re.split(r"^(\w[\w ]*):[ \t]*$", doc, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def documented_arguments(args_section):
    """`{argument: its description}` from an `Args:` section body."""
    entries = re.split(r"^ {4}(\**\w+):", args_section, flags=re.M)
    return {
        name.lstrip("*"): " ".join(text.split())
        for name, text in zip(entries[1::2], entries[2::2], strict=True)
    }


def parameters(obj):
    """The named parameters of a function, or of a class's constructor."""
    signature = inspect.signature(obj)
    return [
        p
        for p in signature.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


# "see `KD`": a function naming the loss class that documents it in full.
# The docstring may wrap between "see" and the name.
SEE_CLASS = re.compile(r"\bsee\s+`(\w+)`", re.IGNORECASE)


def has_references(titled):
    """Whether the `References:` section links to a paper."""
    return bool(
        re.search(
            r"https://(arxiv\.org|doi\.org)/", titled.get("References", "")
        )
    )


def documenting_class(name, obj):
    """`(class, problem)`: the loss class `obj`'s docstring defers to.

    Only a function of `kd_keras.losses` may defer, by "see `Class`"; the
    class must be a loss of `kd_keras.losses` with a `Formula:` and a
    `References:` linking a paper in its own docstring. `(None, None)` when
    the docstring names no class, `(None, message)` when it names one that
    does not qualify.
    """
    if not (name.startswith("kd_keras.losses.") and inspect.isfunction(obj)):
        return None, None
    match = SEE_CLASS.search(inspect.getdoc(obj) or "")
    if match is None:
        return None, None
    class_name = match.group(1)
    cls = getattr(kd_keras.losses, class_name, None)
    if not (
        class_name in kd_keras.losses.__all__
        and inspect.isclass(cls)
        and issubclass(cls, keras.losses.Loss)
    ):
        return None, f"see `{class_name}`: not a loss class of kd_keras.losses"
    # The class's own docstring, not one inherited from its base.
    titled = sections(inspect.cleandoc(vars(cls).get("__doc__") or ""))
    if "Formula" not in titled or not has_references(titled):
        return None, (
            f"see `{class_name}`: the class lacks Formula: or References:"
        )
    return cls, None


def problems(name, obj):
    """What the docstring of `obj` lacks, as a list of messages."""
    doc = inspect.getdoc(obj) or ""
    if not doc:
        return ["no docstring"]
    found = []
    summary = doc.splitlines()[0]
    if not summary.endswith("."):
        found.append(f"summary line does not end with '.': {summary!r}")
    titled = sections(doc)
    arguments = documented_arguments(titled.get("Args", ""))
    for parameter in parameters(obj):
        text = arguments.get(parameter.name)
        if text is None:
            found.append(f"Args: misses {parameter.name!r}")
        elif parameter.default is not parameter.empty and (
            "Defaults to" not in text
        ):
            found.append(f"Args: {parameter.name!r} lacks 'Defaults to'")
    example = titled.get("Example", titled.get("Examples", ""))
    if ">>>" not in example and "```python" not in example:
        found.append("no Example: with a >>> or ```python block")
    is_loss = name.startswith("kd_keras.losses.") or name == (
        "kd_keras.distillation_loss"
    )
    needs_formula = is_loss and name.rsplit(".", 1)[1] not in LOSS_BASES
    lacks_formula = needs_formula and "Formula" not in titled
    lacks_references = name in PAPERS and not has_references(titled)
    if lacks_formula or lacks_references:
        cls, problem = documenting_class(name, obj)
        if problem:
            found.append(problem)
        if cls is None:
            if lacks_formula:
                found.append("loss without Formula:")
            if lacks_references:
                found.append("no References: with an arXiv or DOI link")
    return found


def test_sections_and_arguments_are_parsed():
    doc = inspect.cleandoc(
        """Summary.

        Args:
            a: First. Defaults to `1`.
            b: Second,
                on two lines.
            **kwargs: Passed on.

        Example:

        >>> 1
        1
        """
    )
    titled = sections(doc)
    assert set(titled) == {"Args", "Example"}
    assert documented_arguments(titled["Args"]) == {
        "a": "First. Defaults to `1`.",
        "b": "Second, on two lines.",
        "kwargs": "Passed on.",
    }


def test_problems_are_found():
    def bare(x, y=2):
        """no period"""

    messages = problems("kd_keras.losses.bare", bare)
    assert "Args: misses 'x'" in messages
    assert "Args: misses 'y'" in messages
    assert "loss without Formula:" in messages
    assert any("summary line" in m for m in messages)
    assert any("Example" in m for m in messages)

    def half(x, y=2):
        """Half documented.

        Args:
            x: The x.
            y: The y.
        """

    assert problems("kd_keras.half", half) == [
        "Args: 'y' lacks 'Defaults to'",
        "no Example: with a >>> or ```python block",
    ]


def _twin(doc):
    """A documented function `(teacher, student, temperature=4.0)`."""

    def twin(teacher, student, temperature=4.0):
        pass

    twin.__doc__ = doc
    return twin


TWIN_DOC = """Twin.

    {pointer}

    Args:
        teacher: Teacher logits.
        student: Student logits.
        temperature: Temperature. Defaults to `4.0`.

    Example:

    >>> 1
    1
    """


def test_a_function_may_defer_to_its_loss_class():
    twin = _twin(TWIN_DOC.format(pointer="The functional form of `KD`."))
    # Naming the class is not enough: the docstring must point to it.
    assert problems("kd_keras.losses.kd", twin) == [
        "loss without Formula:",
        "no References: with an arXiv or DOI link",
    ]
    pointing = _twin(TWIN_DOC.format(pointer="See `KD` for the formula."))
    assert problems("kd_keras.losses.kd", pointing) == []
    wrapped = _twin(TWIN_DOC.format(pointer="The form of `KD`; see\n    `KD`."))
    assert problems("kd_keras.losses.kd", wrapped) == []
    # Only to a loss class of kd_keras.losses with Formula: and References:.
    for target, problem in [
        ("Nope", "not a loss class"),
        ("kd", "not a loss class"),  # a function
        ("Hyperparameter", "not a loss class"),  # not in kd_keras.losses
        ("TemperatureLoss", "lacks Formula: or References:"),
        ("SoftenedLoss", "lacks Formula: or References:"),  # no paper link
    ]:
        doc = TWIN_DOC.format(pointer=f"See `{target}` for the formula.")
        messages = problems("kd_keras.losses.kd", _twin(doc))
        assert any(problem in m for m in messages), (target, messages)
        assert "loss without Formula:" in messages
    # Every other requirement stays.
    bare = _twin("see `KD`")
    assert len(problems("kd_keras.losses.kd", bare)) == 5

    # Classes document themselves, and functions elsewhere cannot defer.
    class Twin:
        def __init__(self, teacher, student, temperature=4.0):
            pass

    Twin.__doc__ = pointing.__doc__
    assert "loss without Formula:" in problems("kd_keras.losses.Twin", Twin)
    assert "loss without Formula:" in problems(
        "kd_keras.distillation_loss", pointing
    )


def test_the_api_is_walked():
    assert {
        "kd_keras.Distiller",
        "kd_keras.losses.KD",
        "kd_keras.losses.kd",
        "kd_keras.callbacks.TemperatureSchedule",
        "kd_keras.metrics.TeacherAgreement",
        "kd_keras.models.cnn_student",
        "kd_keras.datasets.load",
        "kd_keras.teachers.ensemble",
        "kd_keras.export.to_tflite",
    } <= set(PUBLIC)
    # Helpers other modules use are left out of their module's __all__.
    assert not {
        "kd_keras.datasets.num_classes",
        "kd_keras.methods.parse_value",
        "kd_keras.export.write_bytes",
    } & set(PUBLIC)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_docstring(name):
    assert not problems(name, PUBLIC[name])


def _examples():
    finder = doctest.DocTestFinder(recurse=False)
    return [
        test
        for name, obj in sorted(PUBLIC.items())
        for test in finder.find(obj, name)
        if test.examples
    ]


EXAMPLES = _examples()


def test_there_are_examples_to_run():
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("test", EXAMPLES, ids=lambda t: t.name)
def test_example_runs(test):
    test.globs = {"kd_keras": kd_keras, "keras": keras, "np": np, "math": math}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert not runner.failures
