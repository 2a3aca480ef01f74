"""The private parts of Keras that kd_keras relies on, in one place.

Each function says which private name it reads and why no public API does
the job; `tests/test_compat.py` fails with a clear message when a Keras
upgrade changes one of them.
"""


def update_compiled_metrics(model, y, y_pred, unweighted, weighted):
    """Updates `model`'s compiled metrics with separate sample weights.

    Keras' `CompileMetrics.update_state` passes no weights to `metrics` and
    the sample weights to `weighted_metrics`. Leaving samples out of both
    (unlabelled samples) needs a weight for each: `unweighted` (a 0/1
    mask) for `metrics`, `weighted` for `weighted_metrics`. Reads the
    private `_compile_metrics` and its `_flat_metrics` and
    `_flat_weighted_metrics` (one model output).
    """
    metrics = model._compile_metrics
    if metrics is None:
        return
    if not metrics.built:
        metrics.build(y, y_pred)
    for group, weights in (
        (metrics._flat_metrics, unweighted),
        (metrics._flat_weighted_metrics, weighted),
    ):
        for metric in group:
            if metric is not None:
                metric.update_state(y, y_pred, sample_weight=weights)
