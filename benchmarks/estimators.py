"""Estimator benchmark: log Z / log-likelihood estimators × accuracy × seconds, with their verdicts.

    python benchmarks/estimators.py [--small-seeds 4] [--model /tmp/mnist.safetensors]
                                    [--methods ais-fast,ais-moderate,bar,raise] [--repeats 2] [--threads 1]
                                    (more methods: ais-sm2008, ais-data-fast, ais-data-moderate, bar-data,
                                    bar-32x200, bdmc)

Part 1, exact: Bernoulli RBMs with 16 visible and 12–20 hidden units, W ~ N(0, 1), biases ~ N(−1, 1),
data = 300 exact samples (hidden states drawn from their enumerated marginal, then v | h); error of
each estimator against ``exact.log_partition``.

Part 2, MNIST (``--model``, a 784×500 RBM saved by ``BoltzmannMachine.save``, e.g. trained with the
``benchmarks/quality.py`` settings on MNIST-5k): each log Z estimator ``--repeats`` times with
different seeds (run-to-run spread), test LL = mean −F(t10k) − log Ẑ, the conservative RAISE side
(control variate, ``log_likelihood_bracket``), and the bracket of every upper side against it. The
``-data`` methods anneal from the training rows' hidden conditionals (``path="data"``, ``data_path``)
instead of the base-rate model (``bar-data``: ``--bar-data-sweeps`` sweeps, each about twice the cost of
a base-rate sweep). ``bdmc`` (``bdmc.log_partition``, its defaults) reports both of its sides: log Z
(forward, the lower bound) and log Z upper (reverse), with the test LL of each. Also a
data-centred importance-sampling check: proposal q(v) = (1/N) Σ_n Π_i Bern(v_i; x_ni flipped with
prob ``--kernel-eps``) over the training rows, log Ẑ_IS = log mean f(v)/q(v) — a stochastic *lower*
bound on log Z that needs no mixing, so an estimator far below it has missed mass.

Every row prints wall and CPU seconds and the load average (the machine is shared by other jobs).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch

import ebmlab
from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import load
from ebmlab.evaluate import ConvergenceWarning, ais, bar, bdmc, exact, log_likelihood_bracket
from ebmlab.evaluate.bracket import BAR_OPTIONS

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BAR_DEFAULTS = {"burn_in": None, **BAR_OPTIONS}  # the upper side of log_likelihood_bracket
RAISE_DEFAULTS = {
    k: inspect.signature(log_likelihood_bracket).parameters[k].default
    for k in ("raise_rows", "raise_chains", "raise_betas")
}


def small_rbm(seed: int) -> BoltzmannMachine:
    g = torch.Generator().manual_seed(seed)
    hidden = 12 + (8 * seed) // 3
    model = BoltzmannMachine([BernoulliLayer(16), BernoulliLayer(hidden)]).to(torch.float64)
    with torch.no_grad():
        model.weights[0].copy_(torch.randn(16, hidden, generator=g, dtype=torch.float64))
        model.layers[0].bias.copy_(torch.randn(16, generator=g, dtype=torch.float64) - 1)
        model.layers[1].bias.copy_(torch.randn(hidden, generator=g, dtype=torch.float64) - 1)
    return model


def timed(fn: Any, *a: Any, **kw: Any) -> tuple[Any, float, float]:
    """(fn(*a, **kw), wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*a, **kw)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def log_z_methods(args: argparse.Namespace) -> dict[str, Any]:
    def forward(betas: str, path: str = "rate") -> Any:
        return lambda m, d, s: ais.log_partition(
            m, args.chains, betas, data=d, seed=s, progress=False, warn=False, path=path
        )

    def pt_bar(chains: int, sweeps: int, burn_in: int | None, path: str = "rate") -> Any:
        return lambda m, d, s: bar.log_partition(
            m, d, chains=chains, sweeps=sweeps, burn_in=burn_in, spacing=args.bar_spacing, seed=s,
            progress=False, warn=False, path=path,
        )

    return {
        "ais-fast": forward("fast"),
        "ais-moderate": forward("moderate"),
        "ais-sm2008": forward("sm2008"),
        "ais-data-fast": forward("fast", "data"),
        "ais-data-moderate": forward("moderate", "data"),
        "bar": pt_bar(args.bar_chains, args.bar_sweeps, args.bar_burn_in),
        "bar-data": pt_bar(args.bar_chains, args.bar_data_sweeps, None, "data"),
        "bar-32x200": pt_bar(32, 200, 50),
        "bdmc": lambda m, d, s: bdmc.log_partition(m, d, seed=s, progress=False, warn=False),
    }


def part_small(args: argparse.Namespace) -> list[dict]:
    rows = []
    methods = log_z_methods(args)
    names = [m for m in args.methods.split(",") if m in methods and m != "ais-sm2008"]
    for name in names + (["bracket"] if "raise" in args.methods.split(",") else []):
        errors, ses, walls, cpus, ok = [], [], [], [], 0
        for seed in range(args.small_seeds):
            model = small_rbm(seed)
            truth = exact.log_partition(model)
            data = exact.sample(model, 300, seed=1000 + seed)[0]
            if name == "bracket":  # the default log_likelihood_bracket: worse side's error in mean log-likelihood
                exact_ll = float(-model.free_energy(data).detach().mean()) - truth
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    res, wall, cpu = timed(
                        log_likelihood_bracket, model, data, data, raise_rows=args.raise_rows, seed=seed, progress=False
                    )
                errors.append(max((res.lower - exact_ll, res.upper - exact_ll), key=abs))
                ses.append(max(res.lower_stderr, res.upper_stderr))
            else:
                res, wall, cpu = timed(methods[name], model, data, seed)
                errors.append(res.log_z - truth)
                ses.append(res.stderr)
            walls.append(wall)
            cpus.append(cpu)
            ok += res.converged
        rows.append(
            {
                "method": name,
                "mean abs error": sum(map(abs, errors)) / len(errors),
                "max abs error": max(map(abs, errors)),
                "mean s.e.": sum(ses) / len(ses),
                "wall s": sum(walls) / len(walls),
                "cpu s": sum(cpus) / len(cpus),
                "converged": f"{ok}/{len(errors)}",
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


@torch.no_grad()
def kernel_is(model: BoltzmannMachine, train: torch.Tensor, samples: int, eps: float, seed: int) -> tuple[float, float]:
    """log mean f(v)/q(v) over v ~ q, q the ε-smoothed mixture of the training rows; (log Ẑ, s.e.)."""
    g = torch.Generator().manual_seed(seed)
    x = train.to(torch.float64)
    n, d = x.shape
    pick = torch.randint(n, (samples,), generator=g)
    flip = (torch.rand(samples, d, generator=g, dtype=torch.float64) < eps).to(torch.float64)
    v = (x[pick] - flip).abs()
    # log q(v) = log mean_n Π_i (1−ε)^{[v_i = x_ni]} ε^{[v_i ≠ x_ni]};  #agree = v·x + (1−v)·(1−x)
    agree = v @ x.T + (1 - v) @ (1 - x).T
    log_q = torch.logsumexp(agree * math.log(1 - eps) + (d - agree) * math.log(eps), 1) - math.log(n)
    log_f = -model.free_energy(v.to(model.dtype)).to(torch.float64)
    log_w = log_f - log_q
    top = log_w.max()
    w = torch.exp(log_w - top)
    return float(top + torch.log(w.mean())), float(w.std() / (w.mean() * math.sqrt(samples)))


def part_mnist(args: argparse.Namespace) -> list[dict]:
    model = ebmlab.load(args.model)
    train = load("mnist", "train5k", data_dir=args.data_dir, download=False).binarize(0.5).data
    test = load("mnist", "t10k", data_dir=args.data_dir, download=False).binarize(0.5).data
    with torch.no_grad():
        test_term = float(-model.free_energy(test).double().mean())
    methods = log_z_methods(args)
    rows: list[dict] = []
    results: dict[str, list] = {}
    for name in [m for m in args.methods.split(",") if m in methods]:
        for r in range(args.first_seed, args.first_seed + args.repeats):
            res, wall, cpu = timed(methods[name], model, train, r)
            results.setdefault(name, []).append(res)
            rows.append(
                {
                    "method": name,
                    "seed": r,
                    "log Z": res.log_z,
                    "s.e.": res.stderr,
                    "test LL": test_term - res.log_z,
                    **({"log Z upper": res.upper, "test LL conservative": test_term - res.upper}
                       if isinstance(res, bdmc.BDMCResult) else {}),
                    "wall s": wall,
                    "cpu s": cpu,
                    "load": os.getloadavg()[0],
                    "verdict": res.diagnostics.summary(),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    if args.kernel_samples:
        (lz, se), wall, cpu = timed(kernel_is, model, train, args.kernel_samples, args.kernel_eps, 0)
        rows.append(
            {
                "method": f"kernel IS (eps {args.kernel_eps}, lower bound)",
                "seed": 0,
                "log Z": lz,
                "s.e.": se,
                "test LL": test_term - lz,
                "wall s": wall,
                "cpu s": cpu,
                "load": os.getloadavg()[0],
                "verdict": "—",
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    if "raise" in args.methods.split(","):
        upper_name = "bar" if "bar" in results else next(iter(results))
        for i, r in enumerate(range(args.first_seed, args.first_seed + args.repeats)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                b, wall, cpu = timed(
                    log_likelihood_bracket,
                    model,
                    test,
                    train,
                    log_z=results[upper_name][i],
                    raise_rows=args.raise_rows,
                    raise_chains=args.raise_chains,
                    raise_betas=args.raise_betas,
                    seed=r,
                    progress=False,
                )
            rows.append(
                {
                    "method": "raise",
                    "seed": r,
                    "lower": b.lower,
                    "lower s.e.": b.lower_stderr,
                    "test LL": b.lower,
                    "wall s": b.raise_result.seconds,
                    "cpu s": cpu,
                    "load": os.getloadavg()[0],
                    "verdict": b.diagnostics.summary(),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def summary(small: list[dict], mnist: list[dict]) -> list[dict]:
    """One row per method: accuracy on the exact small models, run-to-run difference and bracket width on MNIST, CPU s.

    The bracket width of an upper-side method on MNIST is its test LL minus the conservative (RAISE) side of the same
    seed; ``raise`` rows are the conservative side itself."""
    lower = {r["seed"]: r["lower"] for r in mnist if r["method"] == "raise"}
    out: dict[str, dict] = {}
    for r in small:
        out[r["method"]] = {
            "method": r["method"],
            "small: mean / max abs error": f"{r['mean abs error']:.3f} / {r['max abs error']:.3f}",
            "small: CPU s": f"{r['cpu s']:.2f}",
            "small: converged": r["converged"],
        }
    for name in dict.fromkeys(r["method"] for r in mnist if "seed" in r and not r["method"].startswith("kernel")):
        runs = [r for r in mnist if r["method"] == name]
        row = out.setdefault(name, {"method": name})
        lls = [r["test LL"] for r in runs]
        row["MNIST: test LL per seed"] = " / ".join(f"{x:.2f}" for x in lls)
        row["MNIST: run-to-run |diff|"] = f"{max(lls) - min(lls):.2f}"
        if name != "raise" and lower:
            row["MNIST: bracket width per seed"] = " / ".join(
                f"{r['test LL'] - lower[r['seed']]:.2f}" for r in runs if r["seed"] in lower
            )
        row["MNIST: CPU s per run"] = f"{sum(r['cpu s'] for r in runs) / len(runs):.0f}"
        row["MNIST: verdicts"] = "; ".join(dict.fromkeys(r["verdict"] for r in runs))
    return list(out.values())


def markdown(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        cells = [
            (f"{r[k]:.3f}" if abs(r[k]) < 1 else f"{r[k]:.2f}") if isinstance(r.get(k), float) else str(r.get(k, ""))
            for k in keys
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small-seeds", type=int, default=4, help="exact small models (0 skips part 1)")
    p.add_argument("--model", type=Path, default=None, help="a saved 784×500 MNIST RBM (part 2)")
    p.add_argument("--methods", default="ais-fast,ais-moderate,bar,raise", help="comma-separated")
    p.add_argument("--repeats", type=int, default=2, help="independent runs per log Z method on MNIST")
    p.add_argument("--first-seed", type=int, default=0, help="seed of the first MNIST repeat")
    p.add_argument("--chains", type=int, default=100, help="AIS chains")
    p.add_argument("--bar-chains", type=int, default=BAR_DEFAULTS["chains"])
    p.add_argument("--bar-sweeps", type=int, default=BAR_DEFAULTS["sweeps"])
    p.add_argument("--bar-burn-in", type=int, default=BAR_DEFAULTS["burn_in"])
    p.add_argument("--bar-spacing", type=float, default=1.0)
    p.add_argument("--bar-data-sweeps", type=int, default=4000, help="PT+BAR sweeps on the data-centred path")
    p.add_argument("--raise-rows", type=int, default=RAISE_DEFAULTS["raise_rows"])
    p.add_argument("--raise-chains", type=int, default=RAISE_DEFAULTS["raise_chains"])
    p.add_argument("--raise-betas", default=RAISE_DEFAULTS["raise_betas"])
    p.add_argument("--kernel-samples", type=int, default=0, help="samples of the data-kernel IS check (0: skip)")
    p.add_argument("--kernel-eps", type=float, default=0.02)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {}
    if args.small_seeds:
        out["small"] = part_small(args)
        print(f"\nExact small RBMs (16 × 12–20), {args.small_seeds} models, {args.threads} thread(s), shared machine:")
        print(markdown(out["small"]))
    if args.model is not None:
        out["mnist"] = part_mnist(args)
        print(f"\nMNIST model {args.model.name}, {args.threads} thread(s), shared machine:")
        print(markdown(out["mnist"]))
    if args.small_seeds or args.model is not None:
        print(f"\nSummary (one thread, shared machine, load average {os.getloadavg()[0]:.1f} now):")
        print(markdown(summary(out.get("small", []), out.get("mnist", []))))
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
