"""Start N ranks as subprocesses on 127.0.0.1 with the environment torchrun would give them; never hang."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )
    return env


def start(argv: list[str], world: int) -> list[subprocess.Popen]:
    """``python ARGV`` as ranks 0..world-1 of one group."""
    port = free_port()
    return [
        subprocess.Popen([sys.executable, *argv], env=rank_env(r, world, port), cwd=ROOT, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for r in range(world)
    ]


def finish(procs: list[subprocess.Popen], timeout: float = 60) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of each rank; a rank still running after ``timeout`` s is killed and fails."""
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError(f"a rank did not finish within {timeout} s (a hang)") from None
        results.append((p.returncode, out, err))
    return results


def run(argv: list[str], world: int = 2, timeout: float = 60) -> list[tuple[int, str, str]]:
    """Run ``python ARGV`` on ``world`` ranks; assert every rank exits 0."""
    results = finish(start(argv, world), timeout)
    for rank, (rc, _, err) in enumerate(results):
        assert rc == 0, f"rank {rank} exited {rc}:\n{err[-3000:]}"
    return results
