"""One rank of the data-parallel tests: ``python -m tests.distributed.worker SCENARIO OUT`` under torchrun's env.

The parent (``_spawn.spawn``) sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1 and MASTER_PORT.
Each scenario writes what the test compares to OUT as safetensors files named by rank.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import open_zarr
from ebmlab.evaluate import sharded, weight_norm
from ebmlab.history import resume
from ebmlab.train import CD, PCD, Callback, Trainer
from ebmlab.train.distributed import init_process_group

AIS_CHAINS, AIS_SEED = 50, 7

ROWS, BATCH = 51, 20  # the last batch of 11 rows splits 6 / 5 across two ranks


def tiny_data() -> torch.Tensor:
    """51 rows of 10 binary units: two noisy prototypes (float64, seeded)."""
    g = torch.Generator().manual_seed(5)
    proto = torch.tensor([[1.0] * 5 + [0.0] * 5, [0.0] * 5 + [1.0] * 5], dtype=torch.float64)
    pick = proto[torch.randint(0, 2, (ROWS,), generator=g)]
    flip = torch.rand(ROWS, 10, generator=g, dtype=torch.float64) < 0.1
    return torch.where(flip, 1 - pick, pick)


def tiny_trainer(method: str, process_group: object = None) -> Trainer:
    """A 10×6 float64 RBM with CD-2 or PCD-1 (5 chains per rank); no metrics, no progress bar."""
    model = BoltzmannMachine([BernoulliLayer(10), BernoulliLayer(6)], seed=1).double()
    model.initialize(tiny_data(), method="glorot", seed=1)
    m = CD(k=2) if method == "cd" else PCD(k=1, chains=5)
    return Trainer(model, m, lr=0.1, batch_size=BATCH, metrics={}, progress=False, seed=3, process_group=process_group)


class StopAfter(Callback):
    """Calls ``trainer.stop()`` at the end of epoch ``epoch`` (callbacks run on rank 0 only)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state) -> None:
        if state.epoch == self.epoch:
            state.trainer.stop()


def params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in trainer.model.state_dict().items()}


def main(scenario: str, out: Path) -> None:
    import time
    t0 = time.perf_counter()
    init_process_group(torch.device("cpu"), timeout=20)
    rank = dist.get_rank()
    if scenario == "train":
        for method in ("cd", "pcd"):
            trainer = tiny_trainer(method)
            trainer.fit(tiny_data(), 3)
            tensors = params(trainer)
            if method == "pcd":
                tensors["chains"] = trainer.method.particles[0].contiguous()
            save_file(tensors, str(out / f"{method}_{rank}.safetensors"))
        for method in ("cd", "pcd"):  # continue a one-process checkpoint (epoch 1) on two ranks up to epoch 3
            trainer = resume(tiny_trainer(method), out / f"{method}_checkpoint.safetensors")
            trainer.fit(tiny_data(), 3)
            tensors = params(trainer)
            tensors["epoch"] = torch.tensor([trainer.epoch])
            if method == "pcd":
                tensors["chains"] = trainer.method.particles[0].contiguous()
            save_file(tensors, str(out / f"resumed_{method}_{rank}.safetensors"))
        streamed = tiny_trainer("cd")  # from an out-of-core store: each rank streams it and keeps its rows
        streamed.fit(open_zarr(out / "tiny.zarr", buffer_chunks=2), 2)
        save_file(params(streamed), str(out / f"zarr_{rank}.safetensors"))
        stopped = tiny_trainer("cd")
        stopped.callbacks = [StopAfter(2)]
        stopped.fit(tiny_data(), 10)  # rank 0 stops after epoch 2; rank 1 learns it at the end-of-epoch check
        model = tiny_trainer("cd").model
        result = sharded.log_partition(
            model, chains=AIS_CHAINS, betas="fast", seed=AIS_SEED, progress=False, warn=False
        )
        live = sharded.ShardedLogLikelihood(method="tracked", particles=64, seed=2)
        trainer = tiny_trainer("pcd")
        trainer.metrics = {"log_likelihood": live, "weight_norm": weight_norm}
        trainer.fit(tiny_data(), 2)
        save_file(
            {
                "log_weights": result.log_weights.contiguous(),
                "log_z": torch.tensor([result.log_z, result.stderr, result.ess]),
                "live_log_z": torch.tensor([float(live.log_z), live.log_z.stderr]),
                "stopped_epoch": torch.tensor([stopped.epoch]),
                "history": torch.tensor(trainer.history.get("log_likelihood", [])),
                "weight_norm": torch.tensor(trainer.history.get("weight_norm", [])),
                **{f"live_{k}": v for k, v in params(trainer).items()},
            },
            str(out / f"eval_{rank}.safetensors"),
        )
    dist.destroy_process_group()
    print(f"worker {time.perf_counter() - t0:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
