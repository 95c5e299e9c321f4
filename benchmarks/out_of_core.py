"""Out-of-core training: throughput of a zarr store vs in-memory data, and peak resident memory.

1. Throughput: the same RBM trained for one epoch on binarized Fashion-MNIST rows held in memory
   (``Dataset``) and streamed from a zarr store of the same rows (``open_zarr``, default 4 MiB
   chunks, buffer of 4 chunks), alternating the two ``--repeats`` times; ratio = median store
   samples/s ÷ median in-memory samples/s.
2. Peak RSS under a memory cap: a store of about ``--gb`` GB (default 4) built by repeating
   Fashion-MNIST with jitter (x + U(−0.1, 0.1), clipped to [0, 1]; written chunk by chunk, never
   whole in memory) is trained on for one epoch in a fresh process (binarized per chunk as it is
   read) whose address space is capped at ``--cap-mib`` MiB (``RLIMIT_AS``, set before the child
   imports anything; resident memory ≤ address space, so this caps RSS too — Linux ignores
   ``RLIMIT_RSS``; the child runs with ``MALLOC_ARENA_MAX=2`` so glibc does not reserve a 64 MiB
   arena per thread of address space it never uses). A control child under the same cap tries
   ``open_zarr(store).load()`` and must fail with ``MemoryError``, which shows the cap is real. The
   peak resident set size is ``VmHWM`` from /proc/self/status (Linux keeps ``ru_maxrss`` of
   ``getrusage`` across fork + exec, so a child would report its parent's peak; ``ru_maxrss`` is
   printed too, for comparison).

    EBMLAB_DATA=/work/shared/data python benchmarks/out_of_core.py \
        [--rows 20000] [--repeats 3] [--gb 4] [--cap-mib 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import load, open_zarr, write_zarr
from ebmlab.train import CD, Trainer

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
HIDDEN, BATCH = 200, 100


def fashion(rows: int | None = None) -> np.ndarray:
    """Fashion-MNIST training pixels in [0, 1] as float32 rows (the first ``rows`` rows)."""
    folder = os.environ.get("EBMLAB_DATA", DATA_DIR)
    x = load("fashion-mnist", split="train", data_dir=folder, download=False).data.numpy()
    return x if rows is None else x[:rows]


def one_epoch(data: object, seed: int = 0) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one CD-1 epoch on ``data`` (no metrics)."""
    model = BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(HIDDEN)], seed=seed)
    trainer = Trainer(model, CD(k=1), lr=1e-3, batch_size=BATCH, seed=seed, metrics=(), progress=False)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit(data, 1)
    return time.perf_counter() - wall, time.process_time() - cpu


def throughput(rows: int, repeats: int, folder: Path) -> dict[str, float]:
    from ebmlab.data import Dataset

    x = fashion(rows)
    memory = Dataset(torch.from_numpy(x)).binarize(0.5)
    store = open_zarr(write_zarr(folder / "fit.zarr", memory.data))  # the same binarized rows
    runs: dict[str, list[tuple[float, float]]] = {"memory": [], "store": []}
    for _ in tqdm(range(repeats), desc="throughput", unit="repeat"):
        runs["memory"].append(one_epoch(memory))
        runs["store"].append(one_epoch(store))
    out = {f"{k}_wall": statistics.median(w for w, _ in v) for k, v in runs.items()}
    out |= {f"{k}_cpu": statistics.median(c for _, c in v) for k, v in runs.items()}
    out |= {"rows": rows, "chunk_rows": store.chunk_rows, "ratio": out["memory_wall"] / out["store_wall"]}
    return out


def build_large(path: Path, gb: float, seed: int = 0) -> Path:
    """A store of about ``gb`` GB: Fashion-MNIST repeated with uniform jitter, written chunk by chunk."""
    base = fashion()
    rows = int(gb * 2**30 / (base.shape[1] * 4))
    rng = np.random.default_rng(seed)

    class Jittered:
        shape, dtype = (rows, base.shape[1]), np.dtype(np.float32)

        def __getitem__(self, s: slice) -> np.ndarray:
            idx = np.arange(s.start, min(s.stop, rows)) % len(base)
            return np.clip(base[idx] + rng.uniform(-0.1, 0.1, (len(idx), base.shape[1])), 0, 1).astype(np.float32)

    return write_zarr(path, Jittered())


def peak_rss_mib() -> tuple[float, float]:
    """(VmHWM of this process, getrusage ru_maxrss) in MiB; VmHWM is NaN where /proc is missing."""
    hwm = float("nan")
    status = Path("/proc/self/status")
    if status.exists():
        line = next((s for s in status.read_text().splitlines() if s.startswith("VmHWM:")), None)
        hwm = float(line.split()[1]) / 1024 if line else hwm
    return hwm, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_child(path: str, threads: int) -> None:
    """Run in a fresh process: one epoch on the large store; print peak RSS before and after (JSON)."""
    torch.set_num_threads(threads)
    store = open_zarr(path).binarize(0.5)
    store.read_chunk(0)
    before = peak_rss_mib()
    wall, cpu = one_epoch(store)
    after = peak_rss_mib()
    print(json.dumps({"rows": len(store), "chunk_rows": store.chunk_rows, "rss_before_mib": before,
                      "rss_peak_mib": after, "wall": wall, "cpu": cpu}))  # fmt: skip


def load_whole_child(path: str) -> None:
    """Run in a fresh process under the cap: load the whole store into memory; print the outcome (JSON)."""
    try:
        rows = len(open_zarr(path).load())
        outcome = f"loaded {rows} rows"
    except MemoryError as error:
        outcome = f"MemoryError ({str(error) or 'allocation refused'})"
    print(json.dumps({"outcome": outcome}))


def capped(cap_mib: int) -> Callable[[], None]:
    """A ``preexec_fn`` capping the child's address space (hence its resident memory) at ``cap_mib`` MiB."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap_mib * 2**20, cap_mib * 2**20))

    return limit


def run_child(mode: str, path: Path, threads: int, cap_mib: int) -> dict[str, Any]:
    """Run this script as ``--child``/``--load-child`` under the cap and return its JSON line."""
    child = subprocess.run(
        [sys.executable, __file__, mode, str(path), "--threads", str(threads)],
        capture_output=True, text=True, preexec_fn=capped(cap_mib), env=os.environ | {"MALLOC_ARENA_MAX": "2"},
    )  # fmt: skip
    if child.returncode:
        raise SystemExit(f"the {mode} child failed under the {cap_mib} MiB cap:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def store_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000, help="rows for the throughput comparison")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gb", type=float, default=4.0, help="size of the large store in GB (float32 rows)")
    parser.add_argument("--cap-mib", type=int, default=1024, help="address-space cap of the large-store child")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--load-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        peak_rss_child(args.child, args.threads)
        return
    if args.load_child:
        load_whole_child(args.load_child)
        return
    folder = Path(tempfile.mkdtemp(prefix="ebmlab-ooc-"))
    try:
        load_before = os.getloadavg()
        fit = throughput(args.rows, args.repeats, folder)
        began = time.perf_counter()
        big = build_large(folder / "big.zarr", args.gb)
        built = time.perf_counter() - began
        rss = run_child("--child", big, args.threads, args.cap_mib)
        control = run_child("--load-child", big, args.threads, args.cap_mib)["outcome"]
        size = store_bytes(big) / 2**20
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nshared machine: load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
          f"torch threads {args.threads}; CD-1, RBM 784x{HIDDEN}, batch {BATCH}")  # fmt: skip
    print(f"\nthroughput, {fit['rows']} Fashion-MNIST rows, one epoch, median of {args.repeats} (chunks of "
          f"{fit['chunk_rows']} rows, buffer 4 chunks)")  # fmt: skip
    print("| data      | wall s | CPU s | samples/s |")
    print("|-----------|-------:|------:|----------:|")
    for k in ("memory", "store"):
        print(f"| {k:<9} | {fit[k + '_wall']:6.2f} | {fit[k + '_cpu']:5.2f} | {fit['rows'] / fit[k + '_wall']:9.0f} |")
    cpu_ratio = fit["memory_cpu"] / fit["store_cpu"]
    print(f"store / in-memory throughput: {fit['ratio']:.1%} (CPU-time ratio {cpu_ratio:.1%})")
    print(f"\npeak RSS, one epoch on a {size:.0f} MiB store on disk ({rss['rows']} rows x 784 float32 = "
          f"{rss['rows'] * 784 * 4 / 2**20:.0f} MiB raw; built in {built:.0f} s), address space capped at "
          f"{args.cap_mib} MiB (RLIMIT_AS)")  # fmt: skip
    print("| stage                              | peak RSS MiB (VmHWM) | ru_maxrss MiB |")
    print("|------------------------------------|---------------------:|--------------:|")
    for stage, key in (("after imports, model, first chunk", "rss_before_mib"), ("after the epoch", "rss_peak_mib")):
        print(f"| {stage:<34} | {rss[key][0]:20.0f} | {rss[key][1]:13.0f} |")
    print(f"epoch: {rss['wall']:.1f} s wall, {rss['cpu']:.1f} s CPU, {rss['rows'] / rss['wall']:.0f} samples/s")
    print(f"control, open_zarr(store).load() under the same cap: {control}")


if __name__ == "__main__":
    main()
