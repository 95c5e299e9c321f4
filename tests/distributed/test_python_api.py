"""Data-parallel training from Python on 2 gloo ranks (subprocesses on 127.0.0.1), checked against one process.

One spawn runs every scenario of ``worker.main("train")``; the tests below read what it wrote.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ebmlab.data import open_zarr, write_zarr
from ebmlab.evaluate import ais, exact
from ebmlab.evaluate.sharded import shard_seed
from ebmlab.history import save_checkpoint
from ebmlab.history.checkpoint import describe

from . import _spawn, worker

pytestmark = pytest.mark.slow  # one 2-process spawn (~10 s of imports on 2 busy cores) shared by the module


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the worker on 2 ranks once: one-process checkpoints at epoch 1 are written first for the resume."""
    out = tmp_path_factory.mktemp("ranks")
    for method in ("cd", "pcd"):
        t = worker.tiny_trainer(method, process_group=False)
        t.fit(worker.tiny_data(), 1)
        save_checkpoint(out / f"{method}_checkpoint.safetensors", t.state_dict(), describe(t))
    write_zarr(out / "tiny.zarr", worker.tiny_data().numpy(), chunk_rows=10)
    _spawn.run(["-m", "tests.distributed.worker", "train", str(out)], world=2, timeout=120)
    return out


def one_process(method: str, epochs: int = 3) -> dict[str, torch.Tensor]:
    t = worker.tiny_trainer(method, process_group=False)
    t.fit(worker.tiny_data(), epochs)
    return worker.params(t)


def close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: list[str]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in keys)


def test_cd_on_two_ranks_equals_one_process(ranks: Path) -> None:
    """CD-2 with the same global batch (20, uneven last batch 6/5) and seed: the parameters of one process."""
    ref = one_process("cd")
    for rank in (0, 1):
        got = load_file(ranks / f"cd_{rank}.safetensors")
        assert close(got, ref, list(ref)) < 1e-12
    assert close(load_file(ranks / "cd_0.safetensors"), load_file(ranks / "cd_1.safetensors"), list(ref)) == 0.0


def test_pcd_chains_are_sharded_and_parameters_identical(ranks: Path) -> None:
    a, b = (load_file(ranks / f"pcd_{r}.safetensors") for r in (0, 1))
    keys = [k for k in a if k != "chains"]
    assert close(a, b, keys) == 0.0  # bit-identical parameters on both ranks
    assert a["chains"].shape == b["chains"].shape == (5, 10)  # 5 chains per rank, 10 in all
    assert not torch.equal(a["chains"], b["chains"])  # each rank its own stream
    assert close(a, one_process("pcd"), keys) > 1e-6  # so not the one-process run with 5 chains


def test_pcd_on_two_ranks_learns(ranks: Path) -> None:
    """The exact log-likelihood of the data rises from the initial model as much as with one process's 5 chains."""
    data = worker.tiny_data()
    start = exact.mean_log_likelihood(worker.tiny_trainer("pcd", process_group=False).model, data)
    trained = worker.tiny_trainer("pcd", process_group=False).model
    trained.load_state_dict({k: v for k, v in load_file(ranks / "pcd_0.safetensors").items() if k != "chains"})
    alone = worker.tiny_trainer("pcd", process_group=False)
    alone.fit(data, 3)
    gain = exact.mean_log_likelihood(trained, data) - start
    gain_alone = exact.mean_log_likelihood(alone.model, data) - start
    assert gain > 0.25 and gain > 0.5 * gain_alone


def test_resume_one_process_checkpoint_on_two_ranks(ranks: Path) -> None:
    """CD keeps the shared stream: 1 epoch on one process + 2 on two ranks = 3 on one process; PCD re-draws chains."""
    ref = one_process("cd")
    got = load_file(ranks / "resumed_cd_0.safetensors")
    assert int(got["epoch"]) == 3
    assert close(got, ref, list(ref)) < 1e-12
    a, b = (load_file(ranks / f"resumed_pcd_{r}.safetensors") for r in (0, 1))
    assert int(a["epoch"]) == 3 and close(a, b, [k for k in a if k != "chains"]) == 0.0
    assert not torch.equal(a["chains"], b["chains"])


def test_training_from_a_zarr_store_on_two_ranks_equals_one_process(ranks: Path) -> None:
    alone = worker.tiny_trainer("cd", process_group=False)
    alone.fit(open_zarr(ranks / "tiny.zarr", buffer_chunks=2), 2)
    ref = worker.params(alone)
    for rank in (0, 1):
        assert close(load_file(ranks / f"zarr_{rank}.safetensors"), ref, list(ref)) < 1e-12


def test_stop_on_rank_0_stops_every_rank(ranks: Path) -> None:
    assert [int(load_file(ranks / f"eval_{r}.safetensors")["stopped_epoch"]) for r in (0, 1)] == [2, 2]


def test_sharded_ais_equals_one_process_with_all_chains(ranks: Path) -> None:
    """2 ranks × 50 chains: the gathered weights are those of the per-rank seeds, and log Z matches exact."""
    got = [load_file(ranks / f"eval_{r}.safetensors") for r in (0, 1)]
    assert torch.equal(got[0]["log_z"], got[1]["log_z"])  # the same estimate on every rank
    model = worker.tiny_trainer("cd", process_group=False).model
    parts = [
        ais.log_partition(model, chains=worker.AIS_CHAINS, betas="fast", seed=shard_seed(worker.AIS_SEED, r),
                          progress=False, warn=False).log_weights
        for r in (0, 1)
    ]
    assert torch.equal(got[0]["log_weights"], torch.cat(parts))
    log_z, stderr, ess = got[0]["log_z"].tolist()
    assert 50 < ess <= 100
    assert abs(log_z - exact.log_partition(model)) < 4 * stderr + 0.02


def test_sharded_live_log_likelihood_in_training(ranks: Path) -> None:
    """The collective metric ran on both ranks every epoch; rank 0 recorded it; log Z near exact."""
    got = [load_file(ranks / f"eval_{r}.safetensors") for r in (0, 1)]
    history = got[0]["history"]
    assert history.shape == (2,) and bool(torch.isfinite(history).all())
    assert torch.equal(history, got[1]["history"])  # a collective metric: computed on every rank, equal
    assert got[0]["weight_norm"].shape == (2,) and got[1]["weight_norm"].numel() == 0  # others: rank 0 only
    assert torch.equal(got[0]["live_log_z"], got[1]["live_log_z"])
    model = worker.tiny_trainer("pcd", process_group=False).model
    model.load_state_dict({k[5:]: v for k, v in got[0].items() if k.startswith("live_") and k != "live_log_z"})
    log_z, stderr = got[0]["live_log_z"].tolist()
    assert abs(log_z - exact.log_partition(model)) < 4 * stderr + 0.1
    expected = exact.mean_log_likelihood(model, worker.tiny_data())
    assert float(history[-1]) == pytest.approx(expected, abs=4 * stderr + 0.1)
