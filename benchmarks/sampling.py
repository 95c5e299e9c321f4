"""Sample quality: do samples drawn from noise look like the data?

    python benchmarks/sampling.py --model grbm|rbm --budget SECONDS --out DIR
                                  [--threads 1] [--samples 1000] [--data-dir DIR] [--seed 0]

Trains on MNIST-5k (``train5k``; binarized at 0.5 for ``rbm``) for ``--budget`` seconds — of this
process's CPU time by default (``--clock cpu``: with ``--threads 1`` that is the wall time on a core
of its own, so runs on a shared machine stay comparable; ``--clock wall`` for wall clock) — then
draws ``--samples`` chains from noise (every layer drawn from its own biases, i.e. the base
distribution; never reconstructions of data) and runs them ``--sweeps`` sweeps (``--sampler``). It writes

- ``DIR/samples.npy``: (samples, 784) float32 in pixel scale (0 = black … 1 = white): the
  mean-field image E[v | h] of the last sweep (GRBM: denormalized and clipped to [0, 1]);
- ``DIR/samples.png``: a 10 × 10 grid of the first 100; ``DIR/scores.json``: the numbers below;
  ``DIR/model.safetensors``: the trained model (``ebmlab.load``).

Scores, printed beside the same scores of real test images (t10k):

- a digit classifier (multinomial logistic regression, scikit-learn) fitted on the real training
  rows in pixel scale: mean confidence (max class probability) and the entropy (nats) of the
  histogram of predicted classes (ln 10 = 2.30 when all ten digits are equally present);
- Fréchet distance between Gaussians fitted to PCA-50 features (PCA fitted on the training rows)
  of the samples and of the test images; the real reference is as many training rows as samples.

For ``grbm`` it also prints the test log-likelihood in nats per image on the normalized data:
exact (``ebmlab.evaluate.exact``) when the model has at most 20 hidden units, otherwise the bracket
of ``ebmlab.evaluate.log_likelihood_bracket``: forward AIS (``--ll-chains`` chains, ``--ll-schedule``,
default ``sm2008``: about 570 CPU s for 784×500; the upper side) and RAISE on ``--ll-rows`` test rows
(the conservative side), with its verdict.

Recipe (the default for both models, chosen by measurement, see README "Sample quality"): CD from
noise (``--method cd-noise``: every update starts its negative chains from the layers' biases and runs
``--k`` = 20 block-Gibbs sweeps; Agoritsas, Catania, Decelle & Seoane 2023 call this non-persistent
"Rdm-k" training, Liao et al. 2022 use it for GRBMs), Adam lr 3e-3 decayed linearly over the budget;
the scored samples are then drawn from noise with the training's dynamics: ``--sweeps`` = k sweeps for
``rbm``, k + 5 for ``grbm`` (chosen from ``--curve`` measurements: the GRBM's images are still hazy
after k sweeps, and confidence rises by 0.03–0.05 over the next five while the Fréchet distance grows
15–30 %). Such a model is a non-equilibrium one — its k-sweep dynamics from noise reproduce the data,
its equilibrium does not (longer runs drift into a few digits; README). The issue's budget, 10
minutes on 2 CPU cores, is ``--budget 600 --clock wall --threads 2``.

- ``grbm``: GaussianLayer(784), σ² learned, floored at ``--var-min`` 0.2, log-variance learning rate
  ×0.1 (``--fixed-var``: σ² = 1), × 500 Bernoulli, on data normalized by one global mean and std
  (MNIST 0.1307 / 0.3081); exact block Gibbs (``--transition langevin``: Gibbs–Langevin with MH).
- ``rbm``: 784 × 500 Bernoulli on binarized data.

Other methods: ``pcd`` (PCD-k, ``--chains``) and ``pt`` (parallel tempering, ``--temperatures``,
``--beta-min``); other samplers from noise: ``--sampler pt`` (tempered chains on the PT-trained ladder
or ``--sample-rungs`` geometric β ≥ ``--sample-beta-min``) and ``anneal`` (β rising from
``--sample-beta-min`` to 1). ``--curve 20,30,100`` also scores fresh plain chains from noise after each
listed sweep count (what longer runs of the same model give); ``--load MODEL`` scores a saved model
instead of training one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import Budget

import ebmlab
from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer
from ebmlab.data import load
from ebmlab.evaluate import log_likelihood_bracket, mean_log_likelihood
from ebmlab.evaluate.sample_metrics import frechet_distance
from ebmlab.samplers import Gibbs, GibbsLangevin, Sampler
from ebmlab.train import CD, L2, PCD, PT, Trainer

DEFAULT_DATA = next(
    (d / "shared" / "data" for d in Path(__file__).resolve().parents if (d / "shared" / "data").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "data",
)
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


# -- training ---------------------------------------------------------------------------------
class CpuBudget(Budget):
    """``Budget`` measured in this process's CPU seconds: on a machine shared with other jobs, one
    thread's CPU time is the wall time the run would take on a core of its own."""

    def on_train_begin(self, state: Any) -> None:
        self.start = time.process_time()

    def on_batch_end(self, state: Any) -> None:
        done = (time.process_time() - self.start) / self.seconds
        if done >= 1:
            state.trainer.stop()
        else:
            state.trainer.set_lr(self.lr * max(1 - done, self.floor))

def grbm_setup(train: Any, args: argparse.Namespace) -> tuple[BoltzmannMachine, Any, Sampler, Any]:
    data = train.normalize(MNIST_MEAN, MNIST_STD)
    visible = GaussianLayer(
        784, var_min=args.var_min, learn_var=not args.fixed_var, log_var_lr_scale=args.log_var_lr_scale
    )
    model = BoltzmannMachine([visible, BernoulliLayer(args.hidden)], seed=args.seed)
    model.initialize(data.data, method="hinton", seed=args.seed)
    if args.transition == "gibbs":
        sampler: Sampler = Gibbs()
    else:
        sampler = GibbsLangevin(step_size=args.step_size, steps=1, mh=True, target_acceptance=0.574)
    if args.method == "cd-noise":
        method = CD(k=args.k, start="noise", sampler=sampler)
    elif args.method == "pt":
        method = PT(
            k=args.k, chains=args.chains, temperatures=args.temperatures, beta_min=args.beta_min, sampler=sampler
        )
    else:
        method = PCD(k=args.k, chains=args.chains, sampler=sampler)
    return model, data, sampler, method


def rbm_setup(train: Any, args: argparse.Namespace) -> tuple[BoltzmannMachine, Any, Sampler, Any]:
    data = train.binarize(0.5)
    model = BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(args.hidden)], seed=args.seed)
    model.initialize(data.data, method="hinton", seed=args.seed)
    if args.method == "pt":
        method = PT(k=args.k, chains=args.chains, temperatures=args.temperatures, beta_min=args.beta_min)
    elif args.method == "cd-noise":
        method = CD(k=args.k, start="noise")
    else:
        method = PCD(k=args.k, chains=args.chains)
    return model, data, Gibbs(), method


def train_model(args: argparse.Namespace, train: Any) -> tuple[BoltzmannMachine, Any, Sampler, dict]:
    setup = grbm_setup if args.model == "grbm" else rbm_setup
    model, data, sampler, method = setup(train, args)
    trainer = Trainer(
        model,
        method,
        optimizer=torch.optim.Adam if args.optimizer == "adam" else torch.optim.SGD,
        lr=args.lr,
        penalties={"weights.0": L2(args.weight_decay)} if args.weight_decay > 0 else (),
        batch_size=args.batch,
        metrics={},
        callbacks=[(CpuBudget if args.clock == "cpu" else Budget)(args.budget, args.lr, floor=args.lr_floor)],
        seed=args.seed,
        progress=False,
    )
    start, cpu = time.perf_counter(), time.process_time()
    trainer.fit(data, epochs=10**6)
    info = {
        "train_seconds": time.perf_counter() - start,
        "train_cpu_seconds": time.process_time() - cpu,
        "updates": trainer.step,
        "epochs": trainer.step * args.batch / len(data),
        "method": method.config(),
        **method.metrics(),
    }
    if isinstance(method, PT):
        info["trained_betas"] = [float(b) for b in method.betas]
    return model, data, sampler, info


def ladder(rungs: int, beta_min: float) -> list[float]:
    """Geometric inverse temperatures 1 = β_0 > … > β_{rungs−1} = ``beta_min``."""
    return [beta_min ** (t / (rungs - 1)) for t in range(rungs)]


@torch.no_grad()
def draw(
    model: BoltzmannMachine, data: Any, sampler: Sampler, args: argparse.Namespace
) -> tuple[np.ndarray, dict[str, Any]]:
    """Chains from noise run ``sweeps`` sweeps; the mean-field visible image of the last one, in pixels.

    ``--sampler gibbs``: plain chains at β = 1. ``pt``: parallel tempering from noise, ``samples`` chains
    at each rung of the ladder the PT training adapted (``--method pt``), or else of ``--sample-rungs``
    geometric β in [``--sample-beta-min``, 1], with swaps of adjacent rungs (exact for the product of
    the tempered distributions), the β = 1 rung scored. ``anneal``: every
    chain's β rises linearly from ``--sample-beta-min`` to 1 over the first half of the sweeps, then stays 1.
    """
    if isinstance(sampler, GibbsLangevin):
        sampler.freeze()  # the step size adapted during training; exact MALA from here on
    info: dict[str, Any] = {"sampler": args.sampler, "sampler_config": sampler.config()}
    if args.sampler == "pt":
        betas = ladder(args.sample_rungs, args.sample_beta_min) if args.sample_ladder is None else args.sample_ladder
        pt = PT(chains=args.samples, betas=betas, sampler=sampler)
        g = model.generator(args.seed + 1)
        for _ in tqdm(range(args.sweeps), desc="PT sampling", leave=False):
            pt.advance(model, 1, g)
        states = pt.particles
        info |= {"sample_betas": betas, **{f"sample_{k}": v for k, v in pt.metrics().items()}}
    elif args.sampler == "anneal":
        g = model.generator(args.seed + 1)
        states = model.random_states(args.samples, g)
        ramp = max(args.sweeps // 2, 1)
        for t in tqdm(range(args.sweeps), desc="annealed sampling", leave=False):
            beta = args.sample_beta_min + (1 - args.sample_beta_min) * min((t + 1) / ramp, 1.0)
            states = sampler.sweep(model, states, beta, None, g)
    else:
        states = model.sample(args.samples, steps=args.sweeps, seed=args.seed + 1, sampler=sampler, progress=True)
    return pixels(model, data, states), info


def pixels(model: BoltzmannMachine, data: Any, states: list[torch.Tensor]) -> np.ndarray:
    """The mean-field visible image E[v | h] of ``states``, in pixel scale [0, 1]."""
    mean = model.layers[0].mean(model._field(states, 0))
    return data.denormalize(mean).clamp(0, 1).numpy().astype(np.float32)


@torch.no_grad()
def sweep_curve(
    model: BoltzmannMachine, data: Any, sampler: Sampler, args: argparse.Namespace, judge: Judge, x_test: np.ndarray
) -> list[dict[str, float]]:
    """Scores of fresh plain chains from noise after each sweep count in ``--curve``: what longer runs do."""
    g = model.generator(args.seed + 2)
    states, done, rows = model.random_states(args.samples, g), 0, []
    for sweeps in sorted(set(args.curve)):
        for _ in tqdm(range(sweeps - done), desc=f"curve to {sweeps} sweeps", leave=False):
            states = sampler.sweep(model, states, 1.0, None, g)
        done = sweeps
        rows.append({"sweeps": sweeps, **judge.scores(pixels(model, data, states), x_test)})
    return rows


def log_likelihood(model: BoltzmannMachine, train: Any, test: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Test log-likelihood (nats per image, normalized units): exact for ≤ 20 hidden units, else the bracket.

    The bracket is ``ebmlab.evaluate.log_likelihood_bracket`` with forward AIS (``--ll-chains`` chains,
    ``--ll-schedule``) on the upper side and RAISE on ``--ll-rows`` test rows (the bracket's default chains
    each, same schedule) on the conservative side; its verdict says whether the two sides agree. The long
    ``sm2008`` default: on shorter schedules both sides of the 784×500 GRBM sat 25+ nats too high and crossed.
    """
    x = test.normalize(**train.normalization).data
    start = time.perf_counter()
    if model.sizes[1] <= 20:
        return {"test_ll_exact": float(mean_log_likelihood(model, x)), "ll_seconds": time.perf_counter() - start}
    bracket = log_likelihood_bracket(
        model, x, train=train.data, method="ais", options={"chains": args.ll_chains, "betas": args.ll_schedule},
        raise_rows=args.ll_rows, raise_betas=args.ll_schedule, seed=args.seed, progress=False, warn=False,
    )
    return {
        "test_ll_upper_ais": bracket.upper,
        "test_ll_upper_stderr": bracket.upper_stderr,
        "test_ll_lower_raise": bracket.lower,
        "test_ll_lower_stderr": bracket.lower_stderr,
        "test_ll_width": bracket.width,
        "test_ll_converged": bracket.converged,
        "test_ll_bracket": str(bracket),
        "ll_schedule": args.ll_schedule,
        "ll_seconds": time.perf_counter() - start,
    }


# -- scores ------------------------------------------------------------------------------------
class Judge:
    """Classifier and PCA-50 fitted on the real training rows (pixel scale)."""

    def __init__(self, train: np.ndarray, labels: np.ndarray, seed: int) -> None:
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression

        self.classifier = LogisticRegression(max_iter=300, C=0.1).fit(train, labels)
        self.pca = PCA(50, random_state=seed).fit(train)

    def scores(self, x: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        p = self.classifier.predict_proba(x)
        counts = np.bincount(p.argmax(1), minlength=10) / x.shape[0]
        entropy = float(-(counts[counts > 0] * np.log(counts[counts > 0])).sum())
        fd = frechet_distance(self.pca.transform(x), self.pca.transform(reference))
        return {"confidence": float(p.max(1).mean()), "class_entropy": entropy, "frechet_pca50": fd}


def grid_png(x: np.ndarray, path: Path, rows: int = 10) -> None:
    """A rows × rows grid of 28 × 28 images (first rows² samples) as an 8-bit grayscale PNG."""
    from PIL import Image

    k = min(rows * rows, x.shape[0])
    cols = math.ceil(k / rows)
    tiles = np.ones((rows * 29 + 1, cols * 29 + 1), dtype=np.float32)
    for i in range(k):
        r, c = divmod(i, cols)
        tiles[1 + 29 * r : 29 * r + 29, 1 + 29 * c : 29 * c + 29] = x[i].reshape(28, 28)
    Image.fromarray((tiles * 255).round().astype(np.uint8), mode="L").resize(
        (tiles.shape[1] * 2, tiles.shape[0] * 2), Image.NEAREST
    ).save(path)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("grbm", "rbm"), required=True)
    p.add_argument("--budget", type=float, default=None, help="training seconds (see --clock; required unless --load)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="budget in CPU (default) or wall seconds")
    p.add_argument("--out", type=Path, required=True, help="folder for samples.npy, samples.png, scores.json")
    p.add_argument("--samples", type=int, default=1000, help="chains from noise (default 1000)")
    p.add_argument(
        "--sweeps", type=int, default=None,
        help="sweeps per chain (default: cd-noise k (rbm), k + 5 (grbm); else 100 grbm, 1000 rbm)",
    )
    p.add_argument("--sampler", choices=("gibbs", "pt", "anneal"), default=None,
                   help="how the scored chains from noise are run (default gibbs)")
    p.add_argument("--sample-rungs", type=int, default=5, help="PT sampling: rungs of the geometric β ladder")
    p.add_argument("--sample-beta-min", type=float, default=0.5, help="PT sampling / annealing: lowest β")
    p.add_argument("--method", default=None, help="cd-noise (default)|pcd|pt")
    p.add_argument("--hidden", type=int, default=None, help="hidden units (default 500)")
    p.add_argument("--k", type=int, default=None, help="sweeps per update (default 20)")
    p.add_argument("--chains", type=int, default=100, help="persistent chains (pcd, pt)")
    p.add_argument("--temperatures", type=int, default=10, help="PT training: rungs")
    p.add_argument("--beta-min", type=float, default=0.5, help="PT training: lowest β of the (adapted) ladder")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="torch.optim.Adam (default) or SGD")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty on the weights (0: none)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 3e-3)")
    p.add_argument("--lr-floor", type=float, default=0.05, help="final learning rate as a fraction of --lr")
    p.add_argument("--transition", choices=("langevin", "gibbs"), default="gibbs",
                   help="grbm: Gibbs–Langevin with MH (MALA) or exact block Gibbs on the visible units")
    p.add_argument("--step-size", type=float, default=0.1, help="initial Gibbs–Langevin step size (grbm; adapted)")
    p.add_argument("--var-min", type=float, default=0.2, help="variance floor of the Gaussian units (grbm)")
    p.add_argument("--fixed-var", action="store_true", help="grbm: fix σ² = 1 (default: learned, ≥ --var-min)")
    p.add_argument("--log-var-lr-scale", type=float, default=0.1, help="log-variance learning-rate scale (grbm)")
    p.add_argument("--ll-chains", type=int, default=100, help="forward AIS chains (grbm log-likelihood)")
    p.add_argument(
        "--ll-schedule", default="sm2008", help="AIS/RAISE schedule preset: sm2008 (default), moderate, fast"
    )
    p.add_argument("--ll-rows", type=int, default=100, help="test rows scored by RAISE")
    p.add_argument("--no-ll", action="store_true", help="skip the grbm log-likelihood")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--curve", type=lambda t: [int(x) for x in t.split(",")], default=None,
                   help="comma-separated sweep counts: also score fresh plain chains from noise after each")
    p.add_argument("--load", type=Path, default=None, help="score this saved model instead of training one")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    args = p.parse_args(argv)
    if args.budget is None and args.load is None:
        p.error("--budget is required unless --load gives a trained model")
    grbm = args.model == "grbm"
    defaults = {
        "method": "cd-noise",
        "sampler": "gibbs",
        "hidden": 500,
        "k": 20,
        "lr": 3e-3,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.sweeps is None:  # CD from noise: k sweeps from noise as trained; the GRBM k + 5 (README)
        args.sweeps = (args.k + 5 if grbm else args.k) if args.method == "cd-noise" else (100 if grbm else 1000)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    train = load("mnist", "train5k", data_dir=args.data_dir, download=False)
    test = load("mnist", "t10k", data_dir=args.data_dir, download=False)
    if args.load is None:
        model, data, sampler, info = train_model(args, train)
        model.save(args.out / "model.safetensors")
    else:
        _, data, sampler, _ = (grbm_setup if grbm else rbm_setup)(train, args)
        model, info = ebmlab.load(args.load), {"loaded": str(args.load)}
    args.sample_ladder = info.get("trained_betas")
    start = time.perf_counter()
    samples, sample_info = draw(model, data, sampler, args)
    info |= sample_info
    info["sample_seconds"] = time.perf_counter() - start
    np.save(args.out / "samples.npy", samples)
    grid_png(samples, args.out / "samples.png")
    if grbm and not args.no_ll:
        info.update(log_likelihood(model, data, test, args))

    x_train, y_train = train.data.numpy(), train.labels.numpy()
    x_test = test.data.numpy()
    judge = Judge(x_train, y_train, args.seed)
    rng = np.random.default_rng(args.seed)
    reference = x_train[rng.choice(x_train.shape[0], size=min(args.samples, x_train.shape[0]), replace=False)]
    model_scores = judge.scores(samples, x_test)
    if args.curve:
        info["curve"] = sweep_curve(model, data, sampler, args, judge, x_test)
    real_scores = judge.scores(x_test, x_test) | {"frechet_pca50": judge.scores(reference, x_test)["frechet_pca50"]}
    result = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "load_average": os.getloadavg(),
        **info,
        "samples": model_scores,
        "real": real_scores,
        "frechet_ratio": model_scores["frechet_pca50"] / real_scores["frechet_pca50"],
    }
    (args.out / "scores.json").write_text(json.dumps(result, indent=1, default=float))
    trained = (
        f"loaded from {args.load}" if args.load is not None else
        f"method {args.method}, {info['epochs']:.1f} epochs ({info['updates']} updates) in "
        f"{info['train_seconds']:.0f} s wall / {info['train_cpu_seconds']:.0f} s CPU"
    )
    print(f"model {args.model}, {trained}; sampling "
          f"{args.samples} × {args.sweeps} sweeps {info['sample_seconds']:.0f} s; load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (machine shared)")
    print("| images | confidence | class entropy (nats) | Fréchet PCA-50 |")
    print("|---|---|---|---|")
    for name, s in (("samples", model_scores), ("real test", real_scores)):
        print(f"| {name} | {s['confidence']:.3f} | {s['class_entropy']:.3f} | {s['frechet_pca50']:.2f} |")
    print(f"Fréchet ratio samples / real: {result['frechet_ratio']:.2f}")
    if args.curve:
        print("\nfresh chains from noise, scored after each sweep count (same sampler, plain β = 1):")
        print("| sweeps | confidence | class entropy (nats) | Fréchet PCA-50 (ratio to real) |")
        print("|---|---|---|---|")
        for row in info["curve"]:
            ratio = row["frechet_pca50"] / real_scores["frechet_pca50"]
            print(f"| {row['sweeps']} | {row['confidence']:.3f} | {row['class_entropy']:.3f} | "
                  f"{row['frechet_pca50']:.2f} ({ratio:.1f}×) |")
    if "test_ll_exact" in info:
        print(f"test log-likelihood (exact): {info['test_ll_exact']:.1f} nats per image (normalized data)")
    elif "test_ll_bracket" in info:
        print(
            f"test log-likelihood (nats per image, normalized data): {info['test_ll_bracket']} — RAISE on "
            f"{args.ll_rows} test rows … forward AIS ({args.ll_chains} chains, {args.ll_schedule} schedule), "
            f"{info['ll_seconds']:.0f} s"
        )
    return result


if __name__ == "__main__":
    main()
