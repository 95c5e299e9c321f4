"""State tests (no browser) for images, throttling and the teaching widgets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, OneHotLayer
from ebmlab.widgets import EnergyLandscape, GibbsStepper, Throttle, bars_and_stripes_model
from ebmlab.widgets.images import filters_image, particles_image, png, tile


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttle_accepts_once_per_interval() -> None:
    clock = FakeClock()
    t = Throttle(0.5, clock=clock)
    answers = []
    for now in (0.0, 0.1, 0.49, 0.5, 0.9, 1.01, 1.02):
        clock.now = now
        answers.append(t.ready())
    assert answers == [True, False, False, True, False, True, False]
    assert t.accepted == 3
    t.reset()
    assert t.ready()


@pytest.mark.parametrize("bad", [-1.0, "1", True, float("nan")])
def test_throttle_rejects_bad_interval(bad) -> None:
    with pytest.raises(ValueError, match="interval"):
        Throttle(bad)


def test_tile_places_each_image_in_its_cell() -> None:
    images = np.stack([np.full((2, 3), k / 4) for k in range(5)])
    out = tile(images, pad=1, background=-1.0)
    assert out.shape == (2 * 3 + 1, 3 * 4 + 1)  # 5 images → 3 columns × 2 rows of 2×3 cells, 1-pixel gaps
    assert np.all(out[1:3, 1:4] == 0.0)
    assert np.all(out[4:6, 5:8] == 1.0)  # image 4 (value 4/4) sits in row 1, column 1
    assert np.all(out[4:6, 9:12] == -1.0)  # the sixth cell is empty


def test_filters_scale_each_filter_to_its_peak() -> None:
    w = torch.tensor([[2.0, 0.0], [-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    out = filters_image(w, (2, 2))
    first = out[1:3, 1:3].ravel()
    np.testing.assert_allclose(first, [1.0, 0.25, 0.5, 0.75])  # 0.5 + w / (2·2)
    np.testing.assert_allclose(out[1:3, 4:6], 0.5)  # an all-zero filter is plain grey
    with pytest.raises(ValueError, match="image_shape"):
        filters_image(w, (3, 2))


def test_particles_and_png_round_trip() -> None:
    from io import BytesIO

    from PIL import Image

    x = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    pic = particles_image(x, (2, 2))
    img = Image.open(BytesIO(png(pic, scale=2)))
    assert img.size == (2 * 4, 2 * 4)
    pixels = np.asarray(img)
    assert pixels[2, 2] == 0 and pixels[2, 4] == 255  # first pixel black, second white (scale 2)


def _brute_force_visible(model: BoltzmannMachine) -> np.ndarray:
    """p(v) of a Bernoulli RBM by summing exp(−E) over every (v, h) with E = −aᵀv − bᵀh − vᵀWh."""
    w = model.weights[0].detach().double().numpy()
    a = model.layers[0].bias.detach().double().numpy()
    b = model.layers[1].bias.detach().double().numpy()
    nv, nh = w.shape
    p = np.zeros(2**nv)
    for i, v in enumerate(itertools.product([0, 1], repeat=nv)):
        for h in itertools.product([0, 1], repeat=nh):
            v_, h_ = np.array(v), np.array(h)
            p[i] += np.exp(a @ v_ + b @ h_ + v_ @ w @ h_)
    return p / p.sum()


def test_landscape_exact_matches_enumeration_and_follows_sliders() -> None:
    land = EnergyLandscape(visible=3, hidden=2, chains=200, steps=5, seed=3)
    assert land.labels == ["".join(map(str, s)) for s in itertools.product([0, 1], repeat=3)]
    np.testing.assert_allclose(land.exact(), _brute_force_visible(land.model), rtol=1e-10)
    land.sliders["W1[1,0]"].value = 2.5
    land.sliders["visible.bias[2]"].value = -1.0
    assert land.model.weights[0][1, 0].item() == 2.5
    assert land.model.layers[0].bias[2].item() == -1.0
    shown = np.asarray(land.figure.data[0].y)
    np.testing.assert_allclose(shown, _brute_force_visible(land.model), rtol=1e-10)
    q = np.asarray(land.figure.data[1].y)
    assert q.sum() == pytest.approx(1.0) and np.all(q * land.chains == np.round(q * land.chains))


def test_landscape_samples_approach_the_exact_distribution() -> None:
    land = EnergyLandscape(visible=2, hidden=2, chains=4000, steps=30, seed=0)
    # TV of an exact chain's empirical distribution over 4 states with n = 4000 draws is
    # ≤ ½ Σ √(p(1−p)/n) ≈ 0.016 on average; 0.06 leaves room for finite mixing.
    assert land.total_variation() < 0.06


def test_landscape_joint_states_and_onehot_labels() -> None:
    model = BoltzmannMachine([OneHotLayer(1, 3), BernoulliLayer(2)]).double()
    land = EnergyLandscape(model, over="joint", chains=50, steps=2)
    assert len(land.labels) == 3 * 4 and land.labels[0] == "0|00" and land.labels[-1] == "2|11"
    with torch.no_grad():
        e = torch.stack([model._energy([s[i : i + 1] for s in land._states])[0] for i in range(12)])
    np.testing.assert_allclose(land.exact(), torch.softmax(-e, 0).numpy(), rtol=1e-12)


def test_landscape_rejects_big_or_continuous_models() -> None:
    with pytest.raises(ValueError, match="at most 10 units"):
        EnergyLandscape(visible=6, hidden=5)
    with pytest.raises(ValueError, match="over"):
        EnergyLandscape(over="hidden")
    with pytest.raises(TypeError, match="model"):
        EnergyLandscape(model="rbm")


def test_stepper_sweeps_equal_block_gibbs_with_the_same_generator() -> None:
    model = bars_and_stripes_model(3)
    stepper = GibbsStepper(model, image_shape=(3, 3), seed=5)
    g = torch.Generator().manual_seed(5)
    states = model.random_states(1, g)
    assert all(torch.equal(a, b) for a, b in zip(stepper.states, states))
    stepper.half_sweep()
    assert stepper.next_parity == 1 and stepper.sweeps == 0
    stepper.sweep(3)  # finishes sweep 1, then sweeps 2 and 3
    for _ in range(3):
        states = model._gibbs(states, 1.0, None, g)
    assert stepper.sweeps == 3 and stepper.next_parity == 0
    assert all(torch.equal(a, b) for a, b in zip(stepper.states, states))
    assert "sweep 3" in stepper.status.value


def test_stepper_marks_flipped_units() -> None:
    stepper = GibbsStepper(seed=2)
    before = [s.clone() for s in stepper.states]
    stepper.buttons["Sweep"].click()
    for b, a, f in zip(before, stepper.states, stepper.flipped):
        assert torch.equal(f, b != a)
    stepper.buttons["Reset"].click()
    assert stepper.sweeps == 0 and not any(f.any() for f in stepper.flipped)
    with pytest.raises(ValueError, match="times"):
        stepper.sweep(0)
    with pytest.raises(ValueError, match="image_shape"):
        GibbsStepper(bars_and_stripes_model(3), image_shape=(2, 2))


def test_bars_and_stripes_model_prefers_lines() -> None:
    model = bars_and_stripes_model(3)
    line = torch.tensor([[1.0, 1, 1, 0, 0, 0, 0, 0, 0]])
    scattered = torch.tensor([[1.0, 0, 0, 0, 1, 0, 0, 0, 1]])
    assert model.free_energy(line) < model.free_energy(scattered)


def test_stepper_cells_read_on_light_and_dark_pages() -> None:
    """Every unit is a cell in a mid-grey frame: on (white) and off (black) fills both differ from the
    frame by half the luminance range, and the frame differs from a white and from a black page."""
    from io import BytesIO

    from PIL import Image

    stepper = GibbsStepper(seed=2, pixel=24)
    stepper.sweep()
    v, flipped = stepper.states[0][0].numpy(), stepper.flipped[0][0].numpy()
    img = np.asarray(Image.open(BytesIO(stepper.pictures[0].value)).convert("RGB")) / 255.0
    border = 24 // 8
    assert img.shape == (4 * 24 + border, 4 * 24 + border, 3)
    frame = np.concatenate([img[:border].reshape(-1, 3), img[:, :border].reshape(-1, 3)])
    np.testing.assert_allclose(frame, 0.5, atol=1 / 255)  # the outer frame: mid grey
    for i in range(16):
        r, c = divmod(i, 4)
        centre = img[r * 24 + border + 10, c * 24 + border + 10]
        np.testing.assert_allclose(centre, v[i], atol=1 / 255)  # white on, black off
        assert abs(centre.mean() - 0.5) >= 0.49  # contrast with the frame, whatever the page colour
        corner = img[r * 24 + border, c * 24 + border]
        expected = (stepper_ring_colour(v[i]) if flipped[i] else np.full(3, v[i]))
        np.testing.assert_allclose(corner, expected, atol=1 / 255)  # flipped units: a coloured ring
    assert flipped.any() and not flipped.all()
    assert "white</b> on" in stepper.view.children[-2].value and "orange" in stepper.view.children[-2].value


def stepper_ring_colour(value: float) -> np.ndarray:
    from ebmlab.widgets.stepper import OFF, ON

    return ON if value > 0.5 else OFF
