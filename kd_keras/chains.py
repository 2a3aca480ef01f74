"""Sequential distillation: each trained student teaches the next.

`distill_chain` trains `students[0]` from the teacher, `students[1]` from
`students[0]`, and so on, each with its own `kd_keras.Distiller`.
`born_again` (a chain of fresh copies of one architecture) and
`teacher_assistant_chain` (intermediate-size assistants between a large
teacher and a small student) are chains.
"""

import collections.abc

import keras

from kd_keras.distiller import Distiller
from kd_keras.hyperparameters import check_integer
from kd_keras.teacher_outputs import TeacherStore
from kd_keras.validation import check_model, check_model_list, check_models


def _check_kwargs(name, kwargs):
    if kwargs is None:
        return {}
    if not isinstance(kwargs, collections.abc.Mapping):
        raise TypeError(
            f"{name} must be a dict of keyword arguments. "
            f"Received: {name}={kwargs!r}"
        )
    return dict(kwargs)


def _check_chain(teacher, students):
    check_model("teacher", teacher)
    check_model_list("students", students)
    chain = [teacher, *students]
    if len({id(model) for model in chain}) < len(chain):
        raise ValueError(
            "The teacher and the students must be different models: a "
            "model cannot teach itself or be trained twice in one chain."
        )
    # Every link is checked before anything is trained.
    for previous, student in zip(chain, chain[1:], strict=False):
        check_models(previous, student)


def _check_data(x):
    if isinstance(x, collections.abc.Iterator):
        raise TypeError(
            "x is an iterator, which the first generation would exhaust. "
            "Pass arrays, a tf.data.Dataset or a keras.utils.PyDataset. "
            f"Received: x={x!r}"
        )


def _fresh_optimizer(optimizer):
    """An optimizer for one generation.

    An optimizer instance tracks the variables of the model it first trains
    and cannot train another, so each generation gets a new optimizer with
    the instance's configuration (learning rate, schedule, ...). Names and
    configuration dicts make a new optimizer at each `compile` anyway.
    """
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return type(optimizer).from_config(optimizer.get_config())
    return optimizer


def distill_chain(
    teacher,
    students,
    x,
    y=None,
    *,
    compile_kwargs=None,
    fit_kwargs=None,
    distiller_kwargs=None,
):
    """Distills a teacher into a chain of students, each teaching the next.

    `students[0]` is trained from `teacher`, then `students[1]` from the
    trained `students[0]`, and so on. Each link is a `kd_keras.Distiller`
    built with `distiller_kwargs`, compiled with `compile_kwargs` and fit
    on `(x, y)` with `fit_kwargs`. All the links are checked (models,
    output shapes) before the first one is trained.

    An optimizer instance in `compile_kwargs` serves as a template: each
    generation gets its own copy (same configuration, fresh state), as one
    optimizer cannot train two models. Other objects there and in
    `distiller_kwargs` (metrics, `distillation_loss`) are shared by the
    generations, which run one after the other.

    A `Distiller` freezes its teacher; once the chain is trained, each
    student gets back the `trainable` flag it had.

    Args:
        teacher: The trained `keras.Model` at the head of the chain.
        students: A non-empty list of `keras.Model`s, trained in order.
        x: Inputs, as `Distiller.fit` takes them: arrays, a
            `tf.data.Dataset` or a `keras.utils.PyDataset` (passed through
            as is). Not an iterator: every generation reads the data.
        y: Labels, or `None` (datasets carry their own; without labels the
            loss is the distillation loss alone). Defaults to `None`.
        compile_kwargs: Keyword arguments of `Distiller.compile`, e.g.
            `{"optimizer": "adam", "metrics": ["accuracy"]}`. Defaults to
            `None`, `Distiller.compile`'s defaults.
        fit_kwargs: Keyword arguments of `Distiller.fit`, e.g.
            `{"epochs": 5, "verbose": 0}`. Defaults to `None`.
        distiller_kwargs: Keyword arguments of `Distiller`, e.g.
            `{"alpha": 0.1, "temperature": 4.0}`. A `kd_keras.TeacherStore`
            as `cache` serves the first link, whose teacher it holds the
            outputs of; the later links cache as with `"auto"`. Defaults
            to `None`.

    Returns:
        `(students, histories)`: the trained students and the `History`
        of each generation (`histories[k].model` is its `Distiller`).

    Example:

    ```python
    students, histories = kd_keras.distill_chain(
        teacher, [medium, small], x_train, y_train,
        compile_kwargs={"optimizer": "adam"},
        fit_kwargs={"epochs": 5},
    )
    ```

    References:
        - [Mirzadeh et al., 2020, Improved Knowledge Distillation via
          Teacher Assistant](https://arxiv.org/abs/1902.03393)
        - [Furlanello et al., 2018, Born-Again Neural Networks](
          https://arxiv.org/abs/1805.04770)
    """
    compile_kwargs = _check_kwargs("compile_kwargs", compile_kwargs)
    fit_kwargs = _check_kwargs("fit_kwargs", fit_kwargs)
    distiller_kwargs = _check_kwargs("distiller_kwargs", distiller_kwargs)
    _check_chain(teacher, students)
    _check_data(x)
    students = list(students)
    trainable = [student.trainable for student in students]
    histories = []
    previous = teacher
    try:
        for student in students:
            distiller = Distiller(previous, student, **distiller_kwargs)
            if isinstance(distiller_kwargs.get("cache"), TeacherStore):
                distiller_kwargs = {**distiller_kwargs, "cache": "auto"}
            settings = dict(compile_kwargs)
            if "optimizer" in settings:
                settings["optimizer"] = _fresh_optimizer(settings["optimizer"])
            distiller.compile(**settings)
            histories.append(distiller.fit(x, y, **fit_kwargs))
            previous = student
    finally:
        for student, flag in zip(students, trainable, strict=True):
            student.trainable = flag
    return students, histories


def born_again(
    teacher,
    student,
    generations,
    x,
    y=None,
    *,
    compile_kwargs=None,
    fit_kwargs=None,
    distiller_kwargs=None,
):
    """Born-again networks: copies of one model, each teaching the next.

    Makes `generations` fresh copies of `student` (`keras.models.
    clone_model`, nested models included, with newly initialised weights),
    named `<student.name>_generation_<k>`, and trains them as a
    `distill_chain`: generation 1 from `teacher`, generation `k + 1` from
    generation `k`. `student` itself is a template and is not trained.

    The paper trains each generation on its teacher's predictions; pass
    `distiller_kwargs={"alpha": 0.0, "temperature": 1.0}` for that. The
    generations' predictions can then be averaged with
    `kd_keras.teachers.ensemble` (the paper's BAN ensemble).

    Args:
        teacher: The trained `keras.Model` teaching generation 1, usually
            `student`'s architecture trained on the labels.
        student: The `keras.Model` whose architecture each generation
            copies.
        generations: Number of generations, an integer `>= 1`.
        x: Inputs, as for `distill_chain`.
        y: Labels, as for `distill_chain`. Defaults to `None`.
        compile_kwargs: As for `distill_chain`. Defaults to `None`.
        fit_kwargs: As for `distill_chain`. Defaults to `None`.
        distiller_kwargs: As for `distill_chain`. Defaults to `None`.

    Returns:
        `(students, histories)`: the trained generations, in order, and
        their `History` objects.

    Example:

    ```python
    generations, _ = kd_keras.born_again(
        teacher, student, 3, x_train, y_train,
        compile_kwargs={"optimizer": "adam"}, fit_kwargs={"epochs": 5},
    )
    ensemble = kd_keras.teachers.ensemble(generations)
    ```

    References:
        - [Furlanello et al., 2018, Born-Again Neural Networks](
          https://arxiv.org/abs/1805.04770)
    """
    check_model("student", student)
    generations = check_integer("generations", generations, 1)
    clones = []
    for k in range(1, generations + 1):
        clone = keras.models.clone_model(student, recursive=True)
        clone.name = f"{student.name}_generation_{k}"
        clones.append(clone)
    return distill_chain(
        teacher,
        clones,
        x,
        y,
        compile_kwargs=compile_kwargs,
        fit_kwargs=fit_kwargs,
        distiller_kwargs=distiller_kwargs,
    )


def teacher_assistant_chain(
    teacher,
    assistants,
    student,
    x,
    y=None,
    *,
    compile_kwargs=None,
    fit_kwargs=None,
    distiller_kwargs=None,
):
    """Teacher-assistant distillation (TAKD): large to medium to small.

    When the gap between teacher and student is large, the student learns
    better from an intermediate-size teacher assistant distilled from the
    teacher first. The chain is `teacher -> assistants[0] -> ... ->
    student`, trained as a `distill_chain`; list the assistants from the
    largest to the smallest. An empty list is plain distillation.

    Args:
        teacher: The trained `keras.Model`.
        assistants: A list of `keras.Model`s of decreasing size.
        student: The final `keras.Model`.
        x: Inputs, as for `distill_chain`.
        y: Labels, as for `distill_chain`. Defaults to `None`.
        compile_kwargs: As for `distill_chain`. Defaults to `None`.
        fit_kwargs: As for `distill_chain`. Defaults to `None`.
        distiller_kwargs: As for `distill_chain`. Defaults to `None`.

    Returns:
        `(students, histories)`: `[*assistants, student]`, trained, and
        their `History` objects; the final student is `students[-1]`.

    Example:

    ```python
    (*_, student), _ = kd_keras.teacher_assistant_chain(
        resnet110, [resnet32], resnet8, x_train, y_train,
        fit_kwargs={"epochs": 5},
    )
    ```

    References:
        - [Mirzadeh et al., 2020, Improved Knowledge Distillation via
          Teacher Assistant](https://arxiv.org/abs/1902.03393)
    """
    check_model_list("assistants", assistants, minimum=0)
    check_model("student", student)
    return distill_chain(
        teacher,
        [*assistants, student],
        x,
        y,
        compile_kwargs=compile_kwargs,
        fit_kwargs=fit_kwargs,
        distiller_kwargs=distiller_kwargs,
    )


__all__ = [
    "distill_chain",
    "born_again",
    "teacher_assistant_chain",
]
