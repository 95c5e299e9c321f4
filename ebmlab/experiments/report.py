"""One self-contained HTML report of a batch folder, readable offline.

The page embeds plotly.js once (no CDN) and its images as PNG data URIs. From the top: the
metric curves, one figure per metric family (``ebmlab.history.labels``) with one curve per run,
quality first (log-likelihood ± standard error, pseudo-likelihood, reconstruction error,
free-energy gap) and bookkeeping (surrogate loss, lr on a log axis, time, throughput, swap
rates) in smaller figures after them, every axis titled with its unit; a table of each point's
status, grid values and final metrics (quality first, ``X ± se`` where a standard error was
recorded); the weight filters, fantasy particles (the recorder's own model chains) and the
method's negative phase under its name (CD: reconstructions) of each run's last snapshot, each
with a caption; the failed points with their errors and tracebacks; and the Python and package
versions the points ran with. Runs are read from ``points/*/status.json`` and
``points/*/history.zarr`` (``ebmlab.history.open_run``).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import denormalize
from ..history import labels, schema
from .runner import read_status

HISTORY_DIR = "history.zarr"
MAX_TILES = 64


@dataclass
class RunInfo:
    """One point of a batch as the report sees it."""

    id: str
    folder: Path
    status: dict[str, Any]
    metrics: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    filters: str | None = None
    particles: dict[str, tuple[str, str]] = field(default_factory=dict)  # variable: (kind, PNG data URI)
    note: str | None = None

    @property
    def label(self) -> str:
        """The point's grid values (``CD-1 seed=0``), or its id when it has none."""
        axes = self.status.get("axes") or {}
        return " ".join(str(v) if k != "seed" else f"seed={v}" for k, v in axes.items()) or self.id

    @property
    def state(self) -> str:
        return str(self.status.get("status", "not run"))


def _experiment(path: Path) -> dict[str, Any]:
    """The batch's ``experiment.json``; ``ValueError`` naming it when it is not a JSON object with valid points."""
    try:
        config = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    points = config.get("points", []) if isinstance(config, dict) else None
    if not isinstance(points, list) or not all(isinstance(p, dict) and isinstance(p.get("id"), str) for p in points):
        raise ValueError(f"{path} must be a JSON object whose 'points' is a list of objects with an 'id'")
    return config


def _points(run_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """(id, status) of every point, in experiment order; points never started get a ``not run`` status."""
    listed: list[tuple[str, dict[str, Any]]] = []
    config = run_dir / "experiment.json"
    ids: list[str] = []
    planned: dict[str, dict[str, Any]] = {}
    if config.is_file():
        for p in _experiment(config).get("points", []):
            ids.append(p["id"])
            planned[p["id"]] = p
    points_dir = run_dir / "points"
    if points_dir.is_dir():
        ids += sorted(d.name for d in points_dir.iterdir() if d.is_dir() and d.name not in planned)
    for point_id in ids:
        status = read_status(points_dir / point_id)
        if status is None:
            status = {**planned.get(point_id, {}), "id": point_id, "status": "not run"}
        listed.append((point_id, status))
    return listed


def _image_shape(units: int, attrs: dict[str, Any]) -> tuple[int, int]:
    dataset = attrs.get("dataset")
    if isinstance(dataset, str):
        try:
            dataset = json.loads(dataset)
        except ValueError:
            dataset = None
    if isinstance(dataset, dict):
        shape = dataset.get("image_shape")
        if isinstance(shape, (list, tuple)) and len(shape) == 2 and shape[0] * shape[1] == units:
            return int(shape[0]), int(shape[1])
    side = math.isqrt(units)
    return (side, side) if side * side == units else (1, units)


def tiles_png(
    images: np.ndarray, shape: tuple[int, int], normalize: bool, normalization: dict[str, Any] | None = None
) -> str | None:
    """A grid of ``images`` (rows of pixels) as a PNG data URI; each tile min–max scaled if ``normalize``.

    With the data's ``normalization`` record the rows are first mapped back to data units,
    x = s·x̃ + m (``ebmlab.data.denormalize``). Rows holding NaN (unused particle slots) are left
    out; ``None`` when no row is left.
    """
    from PIL import Image

    images = np.asarray(images, dtype=np.float64)
    images = images[~np.isnan(images).any(axis=1)][:MAX_TILES]
    if normalization is not None:
        images = denormalize(images, normalization).numpy()
    images = images.reshape(-1, *shape)
    if len(images) == 0:
        return None
    if normalize:
        low = images.min(axis=(1, 2), keepdims=True)
        span = images.max(axis=(1, 2), keepdims=True) - low
        images = (images - low) / np.where(span > 0, span, 1.0)
    images = np.nan_to_num(np.clip(images, 0.0, 1.0))
    n = len(images)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    h, w = shape
    canvas = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1))
    for k, image in enumerate(images):
        r, c = divmod(k, cols)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = image
    buffer = io.BytesIO()
    Image.fromarray((canvas * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _read_history(run: RunInfo) -> None:
    path = run.folder / HISTORY_DIR
    if not path.exists():
        return
    try:
        from ebmlab.history import open_run

        history = open_run(path)
        epochs = [float(e) for e in history["epoch"].values] if "epoch" in history.coords else []
        for name in sorted(history.data_vars):
            if name.startswith("metric_") and history[name].dims == ("epoch",):
                values = [float(v) for v in history[name].values]
                run.metrics[name.removeprefix("metric_")] = (epochs or list(range(1, len(values) + 1)), values)
        if "weights_0" in history and history.sizes.get("snapshot", 0) > 0:
            weights = history["weights_0"].isel(snapshot=-1).values
            shape = _image_shape(weights.shape[0], dict(history.attrs))
            run.filters = tiles_png(weights.T, shape, normalize=True)
        for name in (schema.FANTASY, schema.NEGATIVE):
            if name in history and history.sizes.get("snapshot", 0) > 0:
                rows = history[name].isel(snapshot=-1).values
                record = history.attrs.get(schema.NORMALIZATION)
                record = record if isinstance(record, dict) and {"mean", "std"} <= set(record) else None
                uri = tiles_png(rows, _image_shape(rows.shape[-1], dict(history.attrs)), False, record)
                default = "particles (older store: the method's negative phase)" if name == schema.FANTASY else name
                if uri is not None:
                    run.particles[name] = (str(history[name].attrs.get(schema.KIND, default)), uri)
    except Exception as exc:  # a damaged or foreign store must not stop the report
        run.note = f"history not readable: {type(exc).__name__}: {exc}"


def _figure_json(panel: labels.Panel, group: str, runs: list[RunInfo]) -> str:
    """One panel (a metric family) as plotly JSON: a curve per run and metric, axis titles with units."""
    from ebmlab.widgets.figures import metric_figure, update_metric_figure

    fig = metric_figure([panel], [run.label for run in runs], group, width=None)
    update_metric_figure(fig, [run.metrics for run in runs])
    fig.data = [t for t in fig.data if len(t.x)]  # runs without this metric draw nothing
    fig.update_layout(
        title={"text": panel.family.name, "font": {"size": 14}},
        autosize=True,
        height=fig.layout.height + 40,
        legend={"orientation": "h", "x": 0, "y": -0.3, "yanchor": "top", "font": {"size": 10}},
        margin={"b": 90},
    )
    fig.layout.annotations = ()
    return fig.to_json().replace("</", "<\\/")


def _figure(uri: str, alt: str, caption: str) -> str:
    return f'<figure><img class="tiles" alt="{alt}" src="{uri}"><figcaption>{caption}</figcaption></figure>'


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    return html.escape(str(value))


def _versions(runs: list[RunInfo]) -> dict[str, list[str]]:
    found: dict[str, set[str]] = {}
    for run in runs:
        for name, version in (run.status.get("versions") or {}).items():
            found.setdefault(name, set()).add(str(version))
    return {name: sorted(v) for name, v in sorted(found.items())}


def write_report(run_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Write the batch report of ``run_dir`` to ``path`` (default ``run_dir/report.html``); return its path."""
    import plotly.offline

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run_dir must be a batch folder, got {str(run_dir)!r} (not a directory)")
    config_path = run_dir / "experiment.json"
    config = _experiment(config_path) if config_path.is_file() else {}
    title, description = config.get("name", run_dir.name), config.get("description") or ""
    runs = [RunInfo(pid, run_dir / "points" / pid, status) for pid, status in _points(run_dir)]
    if not runs:
        raise ValueError(f"{run_dir} holds no points (expected points/<id>/status.json)")
    for run in runs:
        _read_history(run)
    grouped = labels.panels(sorted({m for run in runs for m in run.metrics}))
    metrics = [name for group in grouped.values() for panel in group for name, _ in panel.metrics]
    axes = list(dict.fromkeys(k for run in runs for k in (run.status.get("axes") or {})))
    counts = {s: sum(r.state == s for r in runs) for s in dict.fromkeys(r.state for r in runs)}

    rows = []
    for run in runs:
        values = {k: v[1] for k, v in run.metrics.items()}
        finals = [labels.format_with_stderr(values, m, digits=5) if m in values else "" for m in metrics]
        cells = [run.id, run.state, *((run.status.get("axes") or {}).get(a, "") for a in axes)]
        cells += [run.status.get("seconds", ""), *finals]
        rows.append(
            f'<tr class="{html.escape(run.state)}" data-run="{html.escape(run.id)}">'
            + "".join(f"<td>{_cell(c)}</td>" for c in cells)
            + "</tr>"
        )
    header = "".join(f"<th>{html.escape(h)}</th>" for h in ["point", "status", *axes, "seconds", *metrics])

    figures: dict[str, list[str]] = {group: [] for group in grouped}
    scripts = []
    i = 0
    for group, group_panels in grouped.items():
        for panel in group_panels:
            n = sum(name in run.metrics for run in runs for name, _ in panel.metrics)
            figures[group].append(
                f'<div class="figure {group}" id="curve-{i}" data-metric="{html.escape(panel.family.key)}" '
                f'data-traces="{n}"></div>'
            )
            scripts.append(
                f"(function(){{var f={_figure_json(panel, group, runs)};"
                f"Plotly.newPlot('curve-{i}',f.data,f.layout,{{displaylogo:false,responsive:true}});}})();"
            )
            i += 1
    curves = "".join(
        f'<h3>{html.escape(labels.GROUP_TITLES[group])}</h3><div class="figures {group}">{"".join(divs)}</div>'
        for group, divs in figures.items()
        if divs
    )

    galleries = []
    for run in runs:
        if run.filters or run.particles or run.note:
            parts = [f"<h3>{html.escape(run.id)}</h3>"]
            if run.filters:
                caption = "weight filters: columns of W; grey 0, white positive, black negative (scaled per filter)"
                parts.append(_figure(run.filters, "filters", caption))
            for name, (kind, uri) in run.particles.items():
                alt = "particles" if name == schema.FANTASY else "negative phase"
                parts.append(_figure(uri, alt, html.escape(labels.particles_caption(kind), quote=False)))
            if run.note:
                parts.append(f'<p class="note">{html.escape(run.note)}</p>')
            galleries.append(f'<div class="run-images">{"".join(parts)}</div>')

    failures = [
        f'<details class="failure" data-run="{html.escape(r.id)}" open><summary>{html.escape(r.id)}: '
        f"{html.escape(str(r.status.get('error')))}</summary>"
        f"<pre>{html.escape(json.dumps(r.status.get('parameters', {}), indent=1, default=str))}</pre>"
        f"<pre>{html.escape(str(r.status.get('traceback') or ''))}</pre></details>"
        for r in runs
        if r.state == "failed"
    ]
    versions = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(', '.join(v))}</td></tr>" for k, v in _versions(runs).items()
    )
    summary = ", ".join(f"{n} {html.escape(s)}" for s, n in counts.items())
    generated = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} — ebmlab report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}} td:first-child{{text-align:left}}
tr.failed td{{background:#fdd}} tr.finished td:nth-child(2){{color:#070}}
.figures{{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:8px}}
.figures.bookkeeping{{grid-template-columns:repeat(auto-fill,minmax(300px,1fr))}}
figcaption{{max-width:220px;font-size:12px;color:#444}}
.run-images{{display:inline-block;vertical-align:top;margin:0 1.5em 1em 0}} figure{{display:inline-block;margin:0 8px}}
img.tiles{{width:200px;image-rendering:pixelated}} pre{{background:#f6f6f6;padding:6px;overflow-x:auto;font-size:12px}}
.note{{color:#a00}} .scroll{{overflow-x:auto;max-width:100%}}
</style>
<script>{plotly.offline.get_plotlyjs()}</script>
</head><body data-points="{len(runs)}" data-finished="{counts.get("finished", 0)}"
 data-failed="{counts.get("failed", 0)}">
<h1>{html.escape(title)}</h1>
{f'<p class="description">{html.escape(description)}</p>' if description else ""}
<p>{len(runs)} points: {summary}. Folder <code>{html.escape(str(run_dir.resolve()))}</code>;
report written {generated}.</p>
<h2>Metrics per epoch</h2>
{curves or "<p>No run recorded a history.</p>"}
<h2>Points</h2>
<div class="scroll"><table id="points"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>
<h2>Filters and particles (last snapshot)</h2>
{"".join(galleries) or "<p>No snapshots recorded.</p>"}
<h2>Failed points</h2>
<div id="failures">{"".join(failures) or "<p>None.</p>"}</div>
<h2>Versions</h2>
<table id="versions"><tbody>{versions}</tbody></table>
<script>{"".join(scripts)}</script>
</body></html>
"""
    out = Path(path) if path is not None else run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out
