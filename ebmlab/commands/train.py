"""``ebmlab train``: fit a Boltzmann machine to a named dataset and save it.

    ebmlab train --data digits --layers bernoulli:64,bernoulli:100 --method pcd --mc-steps 1 \\
        --epochs 20 --lr 0.05 --seed 0 --out runs/demo

writes ``OUT/model.safetensors``, the run history ``OUT/history.zarr`` and the checkpoint
``OUT/checkpoint.safetensors`` (``--resume`` continues from it), and prints the final epoch's metrics.
An existing run in OUT is never replaced silently (``--overwrite`` replaces it), and one process at a
time writes to OUT (the lock file ``OUT/.ebmlab.lock`` holds its pid).

Data-parallel: under ``torchrun --nproc-per-node N -m ebmlab train ...`` (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT set) every rank joins the group (gloo on CPU, nccl on CUDA, rank r on
``cuda:LOCAL_RANK``) and trains its share of each global batch; rank 0 alone locks and writes OUT.
``ebmlab train --nproc N ...`` runs torchrun on this machine (rendezvous on 127.0.0.1) with the same
arguments minus ``--nproc``.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAME = "train"
HELP = "train an RBM or deep Boltzmann machine on a dataset (CD, PCD, PT or TAP) and save it"
MODEL_FILE = "model.safetensors"
HISTORY_DIR = "history.zarr"
CHECKPOINT_FILE = "checkpoint.safetensors"
RUN_FILES = (MODEL_FILE, HISTORY_DIR, CHECKPOINT_FILE)
SMALL_MODEL_WEIGHTS = 1_000_000
SAMPLE_ROWS = 10_000  # rows of a zarr store read to check binarity and initialize the model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ebmlab.data import DATASET_NAMES

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        default="digits",
        type=data_argument,
        help=f"dataset name ({', '.join(DATASET_NAMES)}) or a zarr store PATH.zarr made by `ebmlab data convert`",
    )
    data.add_argument(
        "--data-dir", default=None, help="folder with the IDX files of mnist / fashion-mnist (else $EBMLAB_DATA, cache)"
    )
    data.add_argument("--split", default="train", help="which part of the dataset to train on (e.g. train, train5k)")
    data.add_argument(
        "--binarize",
        default="auto",
        choices=("auto", "threshold", "stochastic", "none"),
        help="make the data binary: threshold at 0.5, or sample Bernoulli(x) with --seed; auto thresholds "
        "non-binary data for a Bernoulli or one-hot visible layer and leaves it alone otherwise",
    )
    data.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="fraction of the rows held out (seeded) for validation metrics; 0 keeps every row for training",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--layers",
        default=None,
        help="layers from visible to top as TYPE:SIZE, e.g. bernoulli:64,bernoulli:100 or gaussian:64,onehot:1x10 "
        "(default: bernoulli with the data's width, then bernoulli:100)",
    )
    model.add_argument(
        "--init",
        default="glorot",
        choices=("hinton", "glorot", "pca"),
        help="weight initialization (visible biases always from the data); glorot's larger weights let a run "
        "learn visibly within its first epochs (benchmarks/defaults.py)",
    )
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, … (auto: cuda when available)")
    model.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch; 0 (auto): one thread for models under a million weights, whose small matmuls "
        "only lose time to thread synchronisation, else torch's default",
    )
    learn = parser.add_argument_group("learning")
    learn.add_argument(
        "--method",
        default="pcd",
        choices=("cd", "pcd", "pt", "tap"),
        help="contrastive divergence, persistent CD, parallel tempering, or sampling-free TAP (see --tap-order)",
    )
    learn.add_argument("--mc-steps", type=int, default=1, help="Gibbs sweeps per batch (the k of CD-k / PCD-k)")
    learn.add_argument("--chains", type=int, default=100, help="persistent chains (pcd, pt: chains per temperature)")
    learn.add_argument("--tap-order", type=int, default=2, choices=(2, 3), help="order of the TAP expansion (tap only)")
    learn.add_argument(
        "--beta-std", type=float, default=0.0, help="std of the chains' driven inverse temperatures (pcd; 0: none)"
    )
    learn.add_argument("--epochs", type=int, default=20, help="passes over the training rows")
    learn.add_argument("--batch-size", type=int, default=100, help="rows per mini-batch")
    learn.add_argument("--lr", type=float, default=0.05, help="learning rate")
    learn.add_argument(
        "--optimizer", default="sgd", choices=("sgd", "adam"), help="torch.optim optimizer (sgd: plain, no momentum)"
    )
    learn.add_argument(
        "--l2", type=float, default=0.0, help="weight decay: L2 penalty (λ/2)‖W‖² on every weight matrix"
    )
    learn.add_argument("--seed", type=int, default=0, help="seed for the split, initialization, shuffling and sampling")
    out = parser.add_argument_group("output")
    out.add_argument("--out", default="runs/train", help=f"output folder; the model goes to OUT/{MODEL_FILE}")
    out.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    out.add_argument(
        "--no-history", action="store_true", help=f"record neither OUT/{HISTORY_DIR} nor OUT/{CHECKPOINT_FILE}"
    )
    out.add_argument("--snapshot-every", type=int, default=5, help="epochs between snapshots in the history")
    out.add_argument(
        "--checkpoint-every", type=int, default=5, help="epochs between checkpoints (one is always written at the end)"
    )
    out.add_argument("--resume", action="store_true", help=f"continue the run in OUT from OUT/{CHECKPOINT_FILE}")
    out.add_argument(
        "--overwrite", action="store_true", help="replace a run already in OUT (without it, an existing run is refused)"
    )
    par = parser.add_argument_group("data-parallel (torch.distributed)")
    par.add_argument(
        "--nproc",
        type=int,
        default=None,
        help="train on N processes of this machine: runs torchrun --nproc-per-node N (rendezvous on 127.0.0.1) "
        "with these arguments; --batch-size is the global batch",
    )
    par.add_argument(
        "--backend", default="auto", choices=("auto", "gloo", "nccl"), help="under torchrun: gloo on CPU, nccl on CUDA"
    )
    par.add_argument(
        "--dist-timeout",
        type=float,
        default=120.0,
        help="under torchrun: seconds a rank waits for the others before failing with an error",
    )


def data_argument(value: str) -> str:
    """A dataset name, or a path ending in ``.zarr`` (an out-of-core store read by ``open_zarr``)."""
    from ebmlab.data import DATASET_NAMES

    if value in DATASET_NAMES or value.endswith(".zarr"):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is neither a dataset name {list(DATASET_NAMES)} nor a PATH.zarr")


def in_memory(ds: Any, seed: int, rows: int = SAMPLE_ROWS) -> Any:
    """``ds`` itself, or for an out-of-core store a seeded in-memory sample of at most ``rows`` rows."""
    from ebmlab.data import ZarrDataset

    return ds.sample(rows, seed=seed) if isinstance(ds, ZarrDataset) else ds


@dataclass
class Setup:
    """Everything ``run`` builds from the arguments, before training."""

    model: Any
    trainer: Any
    data: Any
    validation: Any
    out: Path


def build(args: argparse.Namespace, callbacks: Sequence[Any] = ()) -> Setup:
    """Load and prepare the data, build and initialize the model, and the Trainer (with ``callbacks``)."""
    import torch

    import ebmlab
    from ebmlab._checks import check_device
    from ebmlab.data import load, open_zarr
    from ebmlab.layers import BernoulliLayer, OneHotLayer
    from ebmlab.train import CD, L2, PCD, PT, TAP, Method, Trainer

    if not 0 <= args.validation_fraction < 1:
        raise ValueError(f"--validation-fraction must be in [0, 1), got {args.validation_fraction}")
    device = check_device(
        "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.replace("auto", "cpu"),
        "--device",
    )
    store = args.data.endswith(".zarr")
    ds = open_zarr(args.data) if store else load(args.data, split=args.split, data_dir=args.data_dir)
    layers = ebmlab.parse_layers(args.layers or f"bernoulli:{ds.n_units},bernoulli:100")
    if len(layers) < 2:
        raise ValueError(f"--layers must list a visible and at least one hidden layer, got {args.layers!r}")
    if layers[0].n != ds.n_units:
        raise ValueError(
            f"--layers: the visible layer has {layers[0].n} units but {args.data} rows have {ds.n_units}; "
            f"start --layers with {layers[0].kind}:{ds.n_units}"
        )
    discrete = isinstance(layers[0], (BernoulliLayer, OneHotLayer))
    probe = in_memory(ds, args.seed).data
    binary = bool(((probe == 0) | (probe == 1)).all())
    if args.binarize == "threshold" or (args.binarize == "auto" and discrete and not binary):
        ds = ds.binarize(0.5)
    elif args.binarize == "stochastic":
        ds = ds.binarize_stochastic(seed=args.seed)
    train, valid = ds, None
    if args.validation_fraction > 0:
        valid, train = ds.split(args.validation_fraction, seed=args.seed)
    model = ebmlab.BoltzmannMachine(layers, seed=args.seed).to(device)
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: auto), got {args.threads}")
    if args.threads or sum(w.numel() for w in model.weights) < SMALL_MODEL_WEIGHTS:
        torch.set_num_threads(args.threads or 1)
    model.initialize(in_memory(train, args.seed).data.to(device), method=args.init, seed=args.seed)
    if args.method == "cd":
        method: Method = CD(k=args.mc_steps)
    elif args.method == "pt":
        method = PT(k=args.mc_steps, chains=args.chains)
    elif args.method == "tap":
        method = TAP(order=args.tap_order)
    else:
        method = PCD(k=args.mc_steps, chains=args.chains, beta_std=args.beta_std)
    optimizer = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[args.optimizer]
    if args.l2 < 0:
        raise ValueError(f"--l2 must be >= 0, got {args.l2}")
    trainer = Trainer(
        model,
        method,
        optimizer=optimizer,
        lr=args.lr,
        batch_size=args.batch_size,
        penalties={"weights.*": L2(args.l2)} if args.l2 > 0 else (),
        callbacks=callbacks,
        seed=args.seed,
        progress=not args.no_progress,
    )
    return Setup(model, trainer, train, valid, Path(args.out))


def summary(epoch: int, metrics: dict[str, float], seconds: float) -> str:
    """The final metric line: ``epoch E: name=value … (S s)`` (metrics not computed at that epoch are left out)."""
    shown = " ".join(
        f"{k}={v:.5g}" for k, v in metrics.items() if k not in ("lr", "wall_seconds") and not math.isnan(v)
    )
    return f"epoch {epoch}: {shown} ({seconds:.1f} s)"


def history_callbacks(args: argparse.Namespace) -> list[Any]:
    """Recorder (OUT/history.zarr, replaced unless resuming) and Checkpoint callbacks, unless --no-history."""
    if args.no_history:
        return []
    from ebmlab.history import Checkpoint, Recorder

    out = Path(args.out)
    return [
        Recorder(out / HISTORY_DIR, snapshot_every=args.snapshot_every, overwrite=not args.resume),
        Checkpoint(out / CHECKPOINT_FILE, every=args.checkpoint_every),
    ]


def check_output(args: argparse.Namespace) -> None:
    """Refuse --resume with --overwrite, an --out that is a file, and a run already in OUT without either flag."""
    out = Path(args.out)
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite exclude each other: continue the run in --out, or replace it")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not (args.resume or args.overwrite):
        raise FileExistsError(
            f"--out {out} already holds a run ({', '.join(found)}); pass --resume to continue it "
            "or --overwrite to replace it"
        )


def clear_output(out: Path) -> None:
    """Remove the run files in ``out`` (for --overwrite); a history folder that is no run store is refused."""
    import shutil

    from ebmlab.history.writer import is_store

    history = out / HISTORY_DIR
    if history.exists() and not is_store(history):
        raise ValueError(f"--overwrite: {history} is not a run-history store; refusing to delete it")
    if history.exists():
        shutil.rmtree(history)
    for name in (MODEL_FILE, CHECKPOINT_FILE):
        (out / name).unlink(missing_ok=True)


def launch_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N`` (or an abbreviation argparse accepted)."""
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
            continue
        name = word.split("=", 1)[0]
        if len(name) > 3 and "--nproc".startswith(name):
            skip = "=" not in word
            continue
        out.append(word)
    return out


def launch(args: argparse.Namespace) -> int:
    """``python -m torch.distributed.run --nproc-per-node N … -m ebmlab ARGS`` on 127.0.0.1; its exit code."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(args.nproc),
        "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "ebmlab", *launch_argv(args.argv),
    ]
    return subprocess.call(command)


def join_group(args: argparse.Namespace) -> Any:
    """Under torchrun: pick this rank's device and join the process group (``DataParallel``); else None."""
    import torch

    from ebmlab.train.distributed import env_world, init_process_group

    world = env_world()
    if args.nproc is not None:
        if args.nproc < 1:
            raise ValueError(f"--nproc must be an integer >= 1, got {args.nproc}")
        if world is not None:
            raise ValueError("--nproc launches torchrun itself; under torchrun leave --nproc out")
    if world is None:
        return None
    if world[1] > 1 and args.device.startswith("cuda:") and args.device != f"cuda:{world[2]}":
        raise ValueError(
            f"--device {args.device}: with {world[1]} ranks each rank trains on the GPU of its LOCAL_RANK, here "
            f"cuda:{world[2]} (rank {world[0]}); pass --device cuda (or auto)"
        )
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        if world[2] >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(f"LOCAL_RANK {world[2]} has no CUDA device (this machine has {count}); "
                             "start at most one process per GPU (--nproc / --nproc-per-node) or use --device cpu")
        args.device = f"cuda:{world[2]}"
    elif args.device == "auto":
        args.device = "cpu"
    if args.backend == "nccl" and not args.device.startswith("cuda"):
        raise ValueError(f"--backend nccl needs a CUDA device (--device cuda), got --device {args.device}; "
                         "use --backend gloo on CPU")
    if not args.dist_timeout > 0:
        raise ValueError(f"--dist-timeout must be a positive number of seconds, got {args.dist_timeout}")
    return init_process_group(args.device, args.backend, args.dist_timeout)


def agree(dp: Any, ok: bool, device: str) -> None:
    """Every rank learns whether all ranks finished their setup; those that did raise if another did not.

    ``device``: this rank's (``--device`` as ``join_group`` resolved it), where NCCL needs the flag."""
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1.0 if ok else 0.0], device=device if dist.get_backend() == "nccl" else "cpu")
    dp._call("the check that every rank is ready", lambda: dist.all_reduce(flag, dist.ReduceOp.MIN))
    if ok and flag.item() < 1:
        raise RuntimeError(f"{dp.where}: another rank failed while setting up (see its error above); stopping too")


def run(args: argparse.Namespace) -> int:
    if args.nproc is not None and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return launch(args)
    dp = join_group(args)
    if dp is None:
        return run_here(args)
    import torch.distributed as dist

    try:
        return run_here(args, dp)
    finally:
        dist.destroy_process_group()


def run_here(args: argparse.Namespace, dp: Any = None) -> int:
    """Train in this process: alone (``dp`` None) or as one rank of a data-parallel group."""
    import contextlib

    import torch

    from ebmlab.history.lock import RunLock

    if dp is not None and dp.rank != 0:
        return run_rank(args, dp)
    out = Path(args.out)
    try:
        check_output(args)
    except Exception:
        if dp is not None:
            agree(dp, False, args.device)
        raise
    threads = torch.get_num_threads()  # build() may lower it for a small model; restore for in-process callers
    try:
        with RunLock(out):
            with contextlib.ExitStack() as failed:
                if dp is not None:  # on an error before training, tell the other ranks
                    failed.callback(agree, dp, False, args.device)
                check_output(args)  # again under the lock: another process may have written OUT meanwhile
                setup = build(args, history_callbacks(args))
                if args.resume:
                    resume_from_checkpoint(setup, args)
                if args.overwrite:  # only once every argument was accepted
                    clear_output(out)
                failed.pop_all()
            if dp is not None:
                agree(dp, True, args.device)
            began = time.perf_counter()
            setup.trainer.fit(setup.data, args.epochs, validation=setup.validation)
            path = setup.model.save(setup.out / MODEL_FILE)
    finally:
        torch.set_num_threads(threads)
    state = setup.trainer.state
    print(summary(setup.trainer.epoch, state.metrics if state else {}, time.perf_counter() - began))
    print(f"model saved to {path}")
    return 0


def run_rank(args: argparse.Namespace, dp: Any) -> int:
    """A rank other than 0: the same setup without callbacks, lock or output; trains its share of each batch."""
    import torch

    threads = torch.get_num_threads()
    try:
        try:
            setup = build(args)
            if args.resume:
                resume_from_checkpoint(setup, args)
        except Exception:
            agree(dp, False, args.device)
            raise
        agree(dp, True, args.device)
        setup.trainer.fit(setup.data, args.epochs, validation=setup.validation)
    finally:
        torch.set_num_threads(threads)
    return 0


def resume_from_checkpoint(setup: Setup, args: argparse.Namespace) -> None:
    """Restore the trainer from OUT/checkpoint.safetensors; refuse --epochs below its epoch."""
    from ebmlab.history import resume

    path = setup.out / CHECKPOINT_FILE
    resume(setup.trainer, path)
    if args.epochs < setup.trainer.epoch:
        raise ValueError(
            f"--epochs {args.epochs} is below the epoch {setup.trainer.epoch} of the checkpoint {path}; "
            f"pass --epochs {setup.trainer.epoch} or more to continue the run"
        )
