"""BoltzmannMachine: energies, free energies, sampling, conditioning, persistence — against enumeration."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import ebmlab
from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer, OneHotLayer

from ._exact import joint_energy, joint_states, log_z, marginal_free_energy


def randomize(model: BoltzmannMachine, scale: float = 1.0, seed: int = 0) -> BoltzmannMachine:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            s = scale if name.startswith("weights") else 0.5
            p.copy_(s * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


MODELS = {
    "bern-bern": lambda: [BernoulliLayer(4), BernoulliLayer(3)],
    "bern-onehot": lambda: [BernoulliLayer(4), OneHotLayer(1, 3)],
    "onehot-bern": lambda: [OneHotLayer(2, 3), BernoulliLayer(3)],
    "gauss-bern": lambda: [GaussianLayer(3), BernoulliLayer(3)],
    "deep-bbb": lambda: [BernoulliLayer(3), BernoulliLayer(3), BernoulliLayer(2)],
    "deep-bbo": lambda: [BernoulliLayer(3), BernoulliLayer(2), OneHotLayer(1, 3)],
    "deep4": lambda: [BernoulliLayer(2), BernoulliLayer(2), BernoulliLayer(2), BernoulliLayer(2)],
}


def build(key: str, scale: float = 1.0, seed: int = 0) -> BoltzmannMachine:
    return randomize(BoltzmannMachine(MODELS[key]()).double(), scale, seed)


def visible_batch(model: BoltzmannMachine, rows: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    field = torch.randn(rows, model.layers[0].n, generator=g, dtype=torch.float64)
    return model.layers[0].sample(field, 1.0, g).detach()  # data: no graph back to the layer's parameters


def test_energy_matches_definition() -> None:
    model = build("deep-bbo")
    states = [s[:20] for s in joint_states(model)]
    torch.testing.assert_close(model.energy(states), joint_energy(model, states))


@pytest.mark.parametrize("key", list(MODELS))
def test_free_energy_equals_brute_force(key: str) -> None:
    model = build(key)
    v = visible_batch(model)
    torch.testing.assert_close(model.free_energy(v), marginal_free_energy(model, v))


@pytest.mark.parametrize("key", ["bern-bern", "deep-bbb"])
def test_partial_free_energy_sums_out_one_parity(key: str) -> None:
    model = build(key)
    states = [s[::7] for s in joint_states(model)]
    even_given = model.partial_free_energy(states, parity=1)
    # brute force: sum over every configuration of the odd layers
    odd = [i for i in range(model.depth) if i % 2 == 1]
    expected = []
    for r in range(states[0].shape[0]):
        terms = []
        for combo in torch.cartesian_prod(*[torch.arange(int(model.layers[i].num_states())) for i in odd]).reshape(
            -1, len(odd)
        ):
            s = [x[r : r + 1].clone() for x in states]
            for i, c in zip(odd, combo):
                s[i] = model.layers[i].all_states()[c].unsqueeze(0)
            terms.append(-joint_energy(model, s))
        expected.append(-torch.logsumexp(torch.cat(terms), 0))
    torch.testing.assert_close(even_given, torch.stack(expected))


@pytest.mark.parametrize("key", ["bern-bern", "onehot-bern", "gauss-bern", "deep-bbo"])
def test_free_energy_gradient_matches_finite_differences(key: str) -> None:
    model = build(key, scale=0.7)
    v = visible_batch(model, 4)
    model.free_energy(v).sum().backward()
    eps = 1e-6
    for name, p in model.named_parameters():
        flat = p.data.view(-1)
        for k in range(0, flat.numel(), max(1, flat.numel() // 4)):
            old = flat[k].item()
            flat[k] = old + eps
            up = model.free_energy(v).sum().item()
            flat[k] = old - eps
            down = model.free_energy(v).sum().item()
            flat[k] = old
            assert p.grad.view(-1)[k].item() == pytest.approx((up - down) / (2 * eps), abs=1e-6), name


def empirical_tv(model: BoltzmannMachine, beta: float, chains: int, burn: int, keep: int, seed: int) -> float:
    """Total variation between Gibbs samples (several sweeps from many chains) and the exact joint."""
    all_states = joint_states(model)
    codes = torch.cat(all_states, 1)
    exact = torch.softmax(-beta * joint_energy(model, all_states), 0).detach()
    g = torch.Generator().manual_seed(seed)
    states = model.random_states(chains, g)
    for _ in range(burn):
        states = model.gibbs_step(states, beta=beta, generator=g)
    counts = torch.zeros(codes.shape[0], dtype=torch.float64)
    weights = 2 ** torch.arange(codes.shape[1] - 1, -1, -1, dtype=torch.float64)
    lookup = {int(c): i for i, c in enumerate(codes @ weights)}
    for _ in range(keep):
        states = model.gibbs_step(states, beta=beta, generator=g)
        for c in (torch.cat(states, 1) @ weights).tolist():
            counts[lookup[int(c)]] += 1
    return 0.5 * float((counts / counts.sum() - exact).abs().sum())


@pytest.mark.parametrize("key", ["bern-bern", "onehot-bern", "deep-bbb", "deep-bbo"])
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_block_gibbs_reproduces_exact_joint(key: str, beta: float) -> None:
    # ≤ 9 units; 2000 chains × 10 sweeps = 20,000 draws: sampling noise in TV is ≈ 0.03 for 128 states
    model = build(key, scale=1.0)
    assert empirical_tv(model, beta, chains=2000, burn=30, keep=10, seed=1) < 0.05


def test_per_chain_beta_matches_each_temperature() -> None:
    model = build("bern-bern")
    betas = torch.tensor([1.0, 0.3], dtype=torch.float64).repeat_interleave(3000)
    g = torch.Generator().manual_seed(4)
    states = model.random_states(6000, g)
    for _ in range(40):
        states = model.gibbs_step(states, beta=betas, generator=g)
    all_states = joint_states(model)
    for k, beta in enumerate([1.0, 0.3]):
        p = torch.softmax(-beta * joint_energy(model, all_states), 0)
        expected_mean_v = p @ all_states[0]
        torch.testing.assert_close(states[0][k * 3000 : (k + 1) * 3000].mean(0), expected_mean_v, atol=0.04, rtol=0)


def test_clamped_units_never_change() -> None:
    model = build("deep-bbb")
    g = torch.Generator().manual_seed(5)
    states = model.random_states(50, g)
    mask0 = torch.tensor([True, False, True])
    mask1 = torch.rand(50, 3, generator=g) < 0.5
    for _ in range(20):
        new = model.gibbs_step(states, clamp=[mask0, mask1, None], generator=g)
        assert torch.equal(new[0][:, mask0], states[0][:, mask0])
        assert torch.equal(new[1][mask1], states[1][mask1])
        states = new
    v = visible_batch(model, 20)
    out = model.sample_conditional(v, mask0, steps=10, seed=0)
    assert torch.equal(out[:, mask0], v[:, mask0])


def test_sample_conditional_follows_exact_conditional() -> None:
    model = build("bern-bern")
    v = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64).expand(20000, -1)
    mask = torch.tensor([True, True, False, False])
    out = model.sample_conditional(v, mask, steps=30, seed=2)
    # exact p(v2, v3 | v0=1, v1=0)
    cands = torch.tensor([[1.0, 0.0, a, b] for a in (0.0, 1.0) for b in (0.0, 1.0)], dtype=torch.float64)
    p = torch.softmax(-model.free_energy(cands), 0).detach()
    freq = torch.stack([(out == c).all(1).double().mean() for c in cands])
    assert 0.5 * float((freq - p).abs().sum()) < 0.02


def test_predict_label_is_exact() -> None:
    model = build("deep-bbo", scale=1.5)
    v = visible_batch(model, 6)
    probs = model.predict(v)
    # brute force: p(y | v) ∝ Σ_h exp(−E(v, h, y))
    hs, ys = model.layers[1].all_states(), model.layers[2].all_states()
    expected = []
    for row in v:
        logits = []
        for y in ys:
            e = torch.stack([joint_energy(model, [row[None], h[None], y[None]])[0] for h in hs])
            logits.append(torch.logsumexp(-e, 0))
        expected.append(torch.softmax(torch.stack(logits), 0))
    torch.testing.assert_close(probs, torch.stack(expected))
    # the closed form quoted in the docs: p(y|v) ∝ exp(d_y + Σ_j softplus(c_j + (vW₁)_j + (W₂)_{jy}))
    w1, w2 = model.weights[0], model.weights[1]
    c, d = model.layers[1].bias, model.layers[2].bias
    logits = d + torch.nn.functional.softplus((c + v @ w1).unsqueeze(-1) + w2.unsqueeze(0)).sum(1)
    torch.testing.assert_close(probs, torch.softmax(logits, -1).detach())


def test_predict_hidden_of_rbm_is_exact_and_deep_is_mean_field() -> None:
    model = build("bern-bern")
    v = visible_batch(model)
    torch.testing.assert_close(model.predict(v, 1), torch.sigmoid(model.layers[1].bias + v @ model.weights[0]).detach())
    deep = build("deep4", scale=0.3)
    m = deep.mean_field(visible_batch(deep), steps=200)
    for i in range(1, deep.depth):  # mean-field fixed point: m_i = E[h_i | field(m)]
        torch.testing.assert_close(m[i], deep.layers[i].mean(deep.field(m, i)).detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(deep.predict(visible_batch(deep), 2, steps=200), m[2])


def test_impute_recovers_an_encoded_pattern() -> None:
    pattern_a = torch.tensor([1, 1, 0, 1, 0, 0, 1, 0], dtype=torch.float64)
    patterns = torch.stack([pattern_a, 1 - pattern_a])
    model = BoltzmannMachine([BernoulliLayer(8), OneHotLayer(1, 2)]).double()
    with torch.no_grad():  # hidden value k pushes the visible units to pattern k, strongly
        model.weights[0].copy_(8 * (2 * patterns.T - 1))
    # five observed units outweigh the three missing ones, so the chain cannot stay in the wrong mode
    observed = torch.tensor([True, True, True, True, True, False, False, False])
    for target in patterns:
        v = torch.where(observed, target, torch.nan).unsqueeze(0).repeat(3, 1)
        filled = model.impute(v, steps=50, burn_in=20, seed=0)
        assert torch.equal(filled.round(), target.expand(3, -1))
        assert (filled - target).abs().max() < 0.01
        sampled = model.impute(v, observed, method="sample", seed=1)
        assert torch.equal(sampled, target.expand(3, -1))


@pytest.mark.parametrize("method", ["hinton", "glorot", "pca"])
def test_initialize(method: str) -> None:
    data = (torch.rand(200, 6, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    model = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4), BernoulliLayer(3)]).double()
    model.initialize(data, method=method, seed=1)
    torch.testing.assert_close(torch.sigmoid(model.layers[0].bias), data.mean(0).clamp(1e-3, 1 - 1e-3))
    assert all(torch.isfinite(w).all() for w in model.weights)
    if method == "pca":  # whitened principal directions: each hidden field has unit variance over the data
        fields = data @ model.weights[0]
        torch.testing.assert_close(fields.var(0), torch.ones(4, dtype=torch.float64), atol=1e-6, rtol=0)
    again = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4), BernoulliLayer(3)]).double()
    again.initialize(data, method=method, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))


def test_numpy_inputs_and_default_dtype() -> None:
    model = BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3)])
    assert model.dtype == torch.float32
    v = np.array([[0, 1, 1, 0], [1, 1, 0, 0]])
    assert model.free_energy(v).dtype == torch.float32
    assert model.sample(3, steps=2, seed=0)[0].shape == (3, 4)


@pytest.mark.parametrize("key", ["bern-bern", "gauss-bern", "deep-bbo"])
def test_save_load_round_trip_is_exact(key: str, tmp_path) -> None:
    model = build(key)
    path = model.save(tmp_path / "sub" / "model.safetensors")
    again = ebmlab.load(path)
    assert again.spec() == model.spec() and again.dtype == torch.float64
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    v = visible_batch(model)
    torch.testing.assert_close(again.free_energy(v), model.free_energy(v), rtol=0, atol=0)
    assert not list(tmp_path.glob("sub/.*tmp"))  # atomic write left no temporary file


def test_load_rejects_foreign_and_corrupted_files(tmp_path) -> None:
    from safetensors.torch import save_file

    with pytest.raises(FileNotFoundError, match="no model file"):
        ebmlab.load(tmp_path / "missing.safetensors")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="not an ebmlab model"):
        ebmlab.load(foreign)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x80\x04not a safetensors file at all")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        ebmlab.load(junk)
    good = build("bern-bern").save(tmp_path / "good.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(ValueError, match="not a readable safetensors"):
        ebmlab.load(truncated)
    mismatched = tmp_path / "mismatched.safetensors"
    tensors = {k: v.contiguous() for k, v in build("bern-bern").state_dict().items()}
    tensors["weights.0"] = torch.zeros(2, 2, dtype=torch.float64)
    save_file(
        tensors,
        str(mismatched),
        metadata={
            "ebmlab_spec": '{"format": "ebmlab.BoltzmannMachine", "version": 1, '
            '"layers": [{"type": "bernoulli", "n": 4}, {"type": "bernoulli", "n": 3}], "dtype": "float64"}'
        },
    )
    with pytest.raises(ValueError, match=r"tensor weights.0 has shape \(2, 2\)"):
        ebmlab.load(mismatched)


def test_exact_log_z_helper_is_consistent() -> None:
    """Sanity of the test helper itself: Σ_v exp(−F(v)) = Z."""
    model = build("deep-bbb")
    v = model.layers[0].all_states()
    torch.testing.assert_close(torch.logsumexp(-model.free_energy(v), 0), log_z(model))


def test_import_ebmlab_pulls_no_jupyter() -> None:
    code = (
        "import sys, ebmlab, ebmlab.data; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('IPython', 'ipywidgets', 'plotly', 'papermill', 'jupyter_client', 'ipykernel', 'widgets')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
