"""Metric labels and curve figures without a browser: groups, order, units, log lr, ± stderr, NaN epochs."""

from __future__ import annotations

import math

from ebmlab.history import labels
from ebmlab.widgets.figures import MAX_POINTS, metric_figure, update_metric_figure

NAMES = [
    "loss",
    "lr",
    "wall_seconds",
    "samples_per_second",
    "reconstruction_error",
    "pseudo_likelihood",
    "val_pseudo_likelihood",
    "log_likelihood",
    "log_likelihood_stderr",
    "swap_rate_0",
    "swap_rate",
    "free_energy_gap",
    "my_metric",
]


def test_panels_lead_with_likelihood_and_keep_bookkeeping_apart() -> None:
    grouped = labels.panels(NAMES)
    quality = [p.family.key for p in grouped[labels.QUALITY]]
    bookkeeping = [p.family.key for p in grouped[labels.BOOKKEEPING]]
    assert quality == ["log_likelihood", "pseudo_likelihood", "reconstruction_error", "free_energy_gap", "my_metric"]
    assert bookkeeping == ["loss", "lr", "seconds", "per_second", "swap_rate"]
    ll, pl = grouped[labels.QUALITY][:2]
    assert ll.metrics == [("log_likelihood", "log_likelihood_stderr")]  # the stderr rides on its metric
    assert pl.metrics == [("pseudo_likelihood", None), ("val_pseudo_likelihood", None)]
    assert [m for m, _ in grouped[labels.BOOKKEEPING][-1].metrics] == ["swap_rate", "swap_rate_0"]
    assert labels.family("loss").title == "surrogate loss, not a likelihood (nats/sample)"
    assert labels.family("lr").log and not labels.family("log_likelihood").log
    assert labels.family("val_log_likelihood_stderr").key == "log_likelihood"
    # a stderr whose metric is absent is drawn on its own rather than lost
    assert [p.metrics for p in labels.panels(["log_likelihood_stderr"])[labels.QUALITY]] == [
        [("log_likelihood_stderr", None)]
    ]


def test_figure_axes_units_log_lr_error_bars_and_gaps() -> None:
    nan = math.nan
    series = {
        "log_likelihood": ([1, 2, 3, 4], [nan, -90.0, nan, -85.0]),
        "log_likelihood_stderr": ([1, 2, 3, 4], [nan, 1.5, nan, 0.5]),
        "pseudo_likelihood": ([1, 2, 3, 4], [-60.0, -58.0, -57.0, -56.0]),
        "val_pseudo_likelihood": ([1, 2, 3, 4], [-61.0, -60.0, -59.0, -58.5]),
        "loss": ([1, 2, 3, 4], [1.4, -11.9, 80.7, 314.8]),
        "lr": ([1, 2, 3, 4], [1e-3, 1e-3, 5e-4, 5e-4]),
    }
    grouped = labels.panels(series)
    quality = metric_figure(grouped[labels.QUALITY], group=labels.QUALITY)
    bookkeeping = metric_figure(grouped[labels.BOOKKEEPING], group=labels.BOOKKEEPING)
    for fig in (quality, bookkeeping):
        update_metric_figure(fig, [series])
        for t in fig.data:
            x_axis = fig.layout["xaxis" + t.xaxis[1:]]
            y_axis = fig.layout["yaxis" + t.yaxis[1:]]
            assert x_axis.title.text == "epoch" and y_axis.title.text
    assert quality.layout.height > bookkeeping.layout.height  # one row each; quality panels are larger
    ll = next(t for t in quality.data if t.meta[1] == "log_likelihood")
    assert list(ll.x) == [2.0, 4.0] and list(ll.y) == [-90.0, -85.0]  # the skipped epochs are left out
    assert list(ll.error_y.array) == [1.5, 0.5] and ll.error_y.visible
    val = next(t for t in quality.data if t.meta[1] == "val_pseudo_likelihood")
    train = next(t for t in quality.data if t.meta[1] == "pseudo_likelihood")
    assert val.line.dash == "dash" and train.line.dash == "solid" and val.xaxis == train.xaxis
    assert (val.name, train.name) == ("validation", "train")
    lr = next(t for t in bookkeeping.data if t.meta[1] == "lr")
    assert bookkeeping.layout["yaxis" + lr.yaxis[1:]].type == "log"
    assert bookkeeping.layout["yaxis" + lr.yaxis[1:]].title.text == "step size, log axis"
    assert [a.text for a in bookkeeping.layout.annotations] == ["surrogate loss, not a likelihood", "learning rate"]


def test_several_runs_share_colours_across_panels_and_missing_metrics_draw_nothing() -> None:
    a = {"log_likelihood": ([1, 2], [-90.0, -88.0]), "loss": ([1, 2], [0.1, 0.2])}
    b = {"loss": ([1, 2, 3], [0.3, 0.2, 0.1])}
    grouped = labels.panels([*a, *b])
    fig = metric_figure(grouped[labels.QUALITY] + grouped[labels.BOOKKEEPING], runs=["A", "B"])
    update_metric_figure(fig, [a, b])
    by = {(t.meta[0], t.meta[1]): t for t in fig.data}
    assert by[(0, "loss")].line.color == by[(0, "log_likelihood")].line.color != by[(1, "loss")].line.color
    assert list(by[(1, "log_likelihood")].x) == []
    assert [t.name for t in fig.data if t.showlegend] == ["A", "B"]


def test_final_values_with_their_standard_errors() -> None:
    series = {"log_likelihood": [-90.0, -85.25, math.nan], "log_likelihood_stderr": [1.0, 0.5, math.nan]}
    assert labels.format_with_stderr(series, "log_likelihood") == "-85.25 ± 0.5"
    assert labels.format_with_stderr({"x": [math.nan]}, "x") == "–"
    assert labels.headline({"loss": [1.0], **series}) == ("log likelihood", "-85.25 ± 0.5")


def test_a_long_curve_is_thinned_to_its_envelope_with_its_spike_and_error_bars() -> None:
    epochs = list(range(1, 100_001))
    y = [-100.0 + 10 * math.sin(i / 5000) for i in epochs]
    y[43_209] = 50.0  # a one-epoch spike (epoch 43,210)
    y[70_000:70_010] = [math.nan] * 10  # skipped epochs
    se = [i / 1000 for i in epochs]
    series = {"log_likelihood": (epochs, y), "log_likelihood_stderr": (epochs, se)}
    fig = metric_figure(labels.panels(series)[labels.QUALITY], group=labels.QUALITY)
    update_metric_figure(fig, [series])
    ll = fig.data[0]
    x, v = list(ll.x), list(ll.y)
    assert len(x) <= MAX_POINTS + 2 and len(x) >= MAX_POINTS // 2
    assert x[0] == 1.0 and x[-1] == 100_000.0 and x == sorted(set(x))
    assert 43_210.0 in x and max(v) == 50.0  # the spike survives
    assert min(v) == min(b for b in y if not math.isnan(b))
    assert all(not math.isnan(b) for b in v) and not any(70_001 <= a <= 70_010 for a in x)
    assert all(y[int(a) - 1] == b for a, b in zip(x, v))  # kept points are real (epoch, value) pairs
    assert list(ll.error_y.array) == [a / 1000 for a in x]  # each bar stays with its epoch
    short = {"log_likelihood": ([1, 2, 3], [-3.0, -2.0, -1.0])}
    update_metric_figure(fig, [short])
    assert list(fig.data[0].x) == [1.0, 2.0, 3.0]  # short curves are drawn whole
