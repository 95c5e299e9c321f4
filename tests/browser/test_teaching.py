"""Teaching widgets in a real JupyterLab: EnergyLandscape's plotly bars and GibbsStepper's buttons."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import Notebook

pytestmark = pytest.mark.browser

CELLS = [
    "from ebmlab.widgets import EnergyLandscape, GibbsStepper\n"
    "land = EnergyLandscape(visible=3, hidden=2, chains=500, steps=20)\n"
    "display(land)\n"
    "step = GibbsStepper(seed=1)\n"
    "display(step)\n"
    "print('SHOWN')",
    "print(f'SWEEPS={step.sweeps} W={land.model.weights[0][0, 0].item():.2f}')",
]


@pytest.fixture(scope="module")
def notebook(lab, page) -> Iterator[Notebook]:
    nb = Notebook(page, lab, lab.write_notebook("teaching.ipynb", CELLS))
    nb.run(0, expect="SHOWN")
    yield nb
    nb.close()


def test_energy_landscape_draws_all_states_and_follows_a_slider(notebook: Notebook, screenshots) -> None:
    land = notebook.root.locator(".ebmlab-landscape")
    bars = land.locator(".js-plotly-plot g.point")
    bars.first.wait_for(timeout=30_000)
    assert bars.count() == 2 * 2**3  # exact and sampled bar for each of the 8 visible states
    readout = land.locator(".widget-readout").first  # the slider of W1[0,0]
    readout.click()
    notebook.page.keyboard.press("Control+A")
    notebook.page.keyboard.type("2.5")
    notebook.page.keyboard.press("Enter")
    land.screenshot(path=str(screenshots / "energy_landscape.png"))
    assert "W=2.50" in notebook.run(1, expect="W=")


def test_gibbs_stepper_buttons_run_the_chain(notebook: Notebook, screenshots) -> None:
    stepper = notebook.root.locator(".ebmlab-gibbs-stepper")
    stepper.get_by_role("button", name="Sweep", exact=True).click()
    stepper.get_by_text("sweep 1 ").wait_for(timeout=10_000)
    stepper.get_by_role("button", name="10 sweeps").click()
    stepper.get_by_text("sweep 11 ").wait_for(timeout=10_000)
    assert stepper.get_by_text("each cell is a unit").is_visible()
    stepper.screenshot(path=str(screenshots / "gibbs_stepper.png"))
    assert "SWEEPS=11" in notebook.run(1, expect="SWEEPS=")
