"""Every teaching notebook and both templates, run top to bottom in a real JupyterLab, as a user sees them.

Each notebook is copied into the served folder with its small CI parameters injected (papermill's
``parameterize_notebook``, not executed), opened in Chromium, run with "Run All", and then judged
on what the page shows: no traceback, the widgets the notebook displays, and every plotly figure
drawn with a title and with a title on each of its axes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from ..conftest import SHARED_DATA
from .conftest import Lab, Notebook

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TEMPLATES = REPO / "ebmlab" / "experiments" / "templates"
# widget classes each notebook displays in JupyterLab (INTERACTIVE mode)
WIDGETS = {
    "01_energy_based_models": [".ebmlab-landscape"],
    "02_gibbs_sampling_and_mixing": [".ebmlab-gibbs-stepper"],
    "train": [".ebmlab-dashboard"],
    "compare": [".ebmlab-run-comparison"],
}
RUN_TIMEOUT_S = 240


def stage(lab: Lab, source: Path, name: str, **extra: object) -> str:
    """Copy ``source`` into the lab's folder as ``name`` with its CI parameters (and ``extra``) injected."""
    nb = load_notebook_node(str(source))
    parameters = {**nb.metadata.get("ebmlab", {}).get("ci_parameters", {}), **extra}
    nb = parameterize_notebook(nb, parameters, report_mode=False)
    (lab.root / name).write_text(json.dumps(nb))
    return name


def run_all(notebook: Notebook) -> None:
    """Run every cell and wait until the last one has run (or one failed)."""
    notebook.page.evaluate(
        """async (id) => {
            const app = window.jupyterapp;
            app.shell.activateById(id);
            await app.commands.execute('notebook:run-all-cells');
        }""",
        notebook.id,
    )
    notebook.page.wait_for_function(
        """(id) => {
            const w = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.id === id);
            const cells = w.content.widgets.filter(c => c.model.type === 'code');
            const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
            const failed = document.querySelector(`[id="${id}"] [data-mime-type="application/vnd.jupyter.stderr"]`);
            const done = cells.every(c => c.model.executionCount !== null) && kernel && kernel.status === 'idle';
            return done || (failed && failed.innerText.includes('Error') && kernel.status === 'idle');
        }""",
        arg=notebook.id,
        timeout=RUN_TIMEOUT_S * 1000,
        polling=500,
    )


def printed(notebook: Notebook) -> str:
    """Everything the notebook's cells printed (from the notebook model: cells out of view are not in the DOM)."""
    return notebook.page.evaluate(
        """(id) => {
            const w = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.id === id);
            const cells = Array.from({length: w.content.model.cells.length}, (_, i) => w.content.model.cells.get(i));
            return cells.filter(c => c.type === 'code').flatMap(c => c.outputs.toJSON())
                .map(o => [].concat(o.text || '').join('')).join('');
        }""",
        notebook.id,
    )


def check_page(notebook: Notebook, widgets: list[str]) -> None:
    root = notebook.root
    errors = root.locator("[data-mime-type='application/vnd.jupyter.stderr']").filter(has_text="Traceback")
    assert errors.count() == 0, f"{notebook.name} raised:\n{errors.first.inner_text()[-3000:]}"
    for selector in widgets:
        widget = root.locator(selector).first
        widget.scroll_into_view_if_needed(timeout=30_000)
        widget.wait_for(timeout=30_000)
    # figures the notebook shows with fig.show(); the widgets' own figures are tested with the widgets
    plots = root.locator(".js-plotly-plot")
    plots.first.wait_for(timeout=30_000)
    for i in range(plots.count()):
        plots.nth(i).scroll_into_view_if_needed()  # JupyterLab lays out only the cells in view
        plots.nth(i).locator(".main-svg").first.wait_for(timeout=10_000)
    figures = notebook.page.evaluate(
        """(id) => {
            const titles = (p, re) => Array.from(p.querySelectorAll('g.infolayer text'))
                .filter(t => re.test(t.getAttribute('class'))).map(t => t.textContent.trim());
            return Array.from(document.querySelectorAll(`[id="${id}"] .js-plotly-plot`))
            .filter(p => !p.closest('.jupyter-widgets, .widget-output, [data-mime-type*="widget"]'))
            .map(p => ({
                title: (p.querySelector('.gtitle') || {textContent: ''}).textContent.trim(),
                panels: p.querySelectorAll('g.cartesianlayer > g.subplot').length,
                x: titles(p, /^x[0-9]*title$/),  // xtitle, x2title, …: one per titled x-axis
                y: titles(p, /^y[0-9]*title$/),
            }));
        }""",
        notebook.id,
    )
    assert figures, f"{notebook.name} showed no figure"
    for i, fig in enumerate(figures):
        assert fig["title"], f"{notebook.name}: figure {i} has no title"
        for axis in ("x", "y"):
            titled = [t for t in fig[axis] if t]
            assert len(titled) >= fig["panels"] >= 1, (
                f"{notebook.name}: figure {fig['title']!r}: {fig['panels']} panels, {axis}-axis titles {fig[axis]}"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_teaching_notebook_renders_labelled_figures(lab: Lab, page, path: Path) -> None:
    extra = {}
    if "data_dir" in load_notebook_node(str(path)).metadata.get("ebmlab", {}).get("ci_parameters", {}):
        if not (SHARED_DATA / "mnist").is_dir():  # a notebook on real MNIST reads the shared IDX files
            pytest.skip(f"{path.name} needs the MNIST IDX files, not found at {SHARED_DATA}")
        extra["data_dir"] = str(SHARED_DATA)
    nb = Notebook(page, lab, stage(lab, path, path.name, **extra))
    try:
        run_all(nb)
        check_page(nb, WIDGETS.get(path.stem, []))
    except Exception:
        page.screenshot(path=str(lab.root.parent / f"failure-{path.stem}.png"), full_page=True)
        raise
    finally:
        nb.close()


def test_templates_train_then_compare_from_the_default_folder(lab: Lab, page) -> None:
    # the train template writes runs/demo/<run>/ in the served folder; compare, run with its default
    # runs=None from a subfolder (like notebooks/templates of a checkout), finds them there
    for method in ("cd", "pcd"):
        name = stage(lab, TEMPLATES / "train.ipynb", f"train_{method}.ipynb", method=method, out=f"runs/demo/{method}")
        nb = Notebook(page, lab, name)
        try:
            run_all(nb)
            check_page(nb, WIDGETS["train"])
        finally:
            nb.close()
    (lab.root / "templates").mkdir(exist_ok=True)
    nb = Notebook(page, lab, stage(lab, TEMPLATES / "compare.ipynb", "templates/compare.ipynb"))
    try:
        run_all(nb)
        check_page(nb, WIDGETS["compare"])
        assert "2 runs under" in printed(nb)
    finally:
        nb.close()
