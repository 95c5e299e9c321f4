"""Run every point of an experiment in parallel on Dask, then write the report.

Layout of a batch folder ``out_dir``::

    experiment.json        the parsed configuration and the list of points
    template.ipynb         the template the points ran
    points/<id>/           one folder per point (see ``ebmlab.experiments.runner``)
    report.html            ``ebmlab.experiments.write_report(out_dir)``

Points whose ``status.json`` says ``finished`` are skipped when the batch runs again; failed or
interrupted points run again. A failing point is recorded and never stops the others.

**Where the points run.** By default on a ``LocalCluster`` of worker processes bound to 127.0.0.1
(one thread each; ``workers`` of them, by default as many as cores or points, whichever is fewer;
dashboard off). ``scheduler`` may instead be the address of a running scheduler
(``tcp://host:8786``), a ``distributed.Client`` or any Dask cluster object. Workers import
``ebmlab.experiments.runner.run_point``, so ebmlab (with its ``jupyter`` extra) must be installed
where they run, and ``out_dir`` must be on a file system they share with this process.

On a Slurm machine, with ``pip install dask-jobqueue``::

    from dask_jobqueue import SLURMCluster
    from ebmlab.experiments import run_batch

    cluster = SLURMCluster(cores=4, processes=1, memory="16GB", walltime="02:00:00",
                           job_extra_directives=["--partition=cpu"])
    run_batch("experiment.yaml", out_dir="/shared/runs/sweep", scheduler=cluster, workers=8)

(``workers`` scales a cluster object to that many workers; with a scheduler address it waits until
that many workers have joined.) Or start ``dask scheduler`` on a login node, submit jobs that run
``dask worker tcp://login:8786 --nthreads 1``, and pass ``--scheduler tcp://login:8786`` to
``ebmlab batch``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .grid import Experiment, Point, load_experiment
from .runner import read_status, run_point, write_json_atomic

WAIT_FOR_WORKERS_SECONDS = 120.0
CONNECT_SECONDS = 5.0  # a scheduler that does not answer within this is reported, not waited for


@dataclass
class BatchResult:
    """What a batch did: its folder, all points, each point's status, and which ran now or were skipped."""

    run_dir: Path
    points: list[Point]
    statuses: dict[str, dict[str, Any]]
    executed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    report: Path | None = None

    @property
    def finished(self) -> list[str]:
        return [p.id for p in self.points if self.statuses.get(p.id, {}).get("status") == "finished"]

    @property
    def failed(self) -> list[str]:
        return [p.id for p in self.points if self.statuses.get(p.id, {}).get("status") == "failed"]


def point_dir(run_dir: str | os.PathLike, point: Point | str) -> Path:
    """The folder of a point (or point id) inside a batch folder."""
    return Path(run_dir) / "points" / (point if isinstance(point, str) else point.id)


def _check_parameters(template: Path, experiment: Experiment, points: list[Point]) -> None:
    """Raise ``ValueError`` for parameter names the template's ``parameters`` cell does not declare."""
    import papermill

    declared = set(papermill.inspect_notebook(str(template)))
    if not declared:
        return
    used = {name for p in points for name in p.parameters}
    unknown = sorted(used - declared)
    if unknown:
        raise ValueError(
            f"parameters {unknown} are not in the 'parameters' cell of template {experiment.template!r}; "
            f"it declares {sorted(declared)}"
        )


def _connect(scheduler: Any, workers: int | None, n_points: int) -> tuple[Any, Any]:
    """A Dask client and the cluster this call created (``None`` when the caller owns the cluster)."""
    from distributed import Client, LocalCluster

    if scheduler is None:
        cores = os.cpu_count() or 1
        n = workers or max(1, min(cores, n_points))
        threads = str(max(1, cores // n))
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads},
        )
        return Client(cluster), cluster
    if isinstance(scheduler, Client):
        client = scheduler
    elif isinstance(scheduler, str):
        if not scheduler.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
            raise ValueError(f"scheduler must be an address like 'tcp://host:8786', got {scheduler!r}")
        try:
            client = Client(scheduler, timeout=CONNECT_SECONDS)
        except OSError as err:
            raise OSError(
                f"no Dask scheduler answers at {scheduler} (gave up after {CONNECT_SECONDS:g} s: {err}); "
                "start one with 'dask scheduler', or leave out the scheduler for a local cluster"
            ) from err
    elif hasattr(scheduler, "scheduler_address"):
        if workers:
            scheduler.scale(workers)
        client = Client(scheduler)
    else:
        raise TypeError(
            f"scheduler must be None, an address string, a distributed.Client or a Dask cluster, "
            f"got {type(scheduler).__name__}"
        )
    if workers:
        client.wait_for_workers(workers, timeout=WAIT_FOR_WORKERS_SECONDS)
    return client, None


def run_batch(
    config_or_path: Mapping[str, Any] | str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = True,
    report: bool = True,
    retry_failed: bool = True,
) -> BatchResult:
    """Run an experiment's points (see ``ebmlab.experiments.grid``) in parallel; return a ``BatchResult``.

    ``out_dir`` defaults to ``runs/<name>``. Finished points are skipped; failed ones run again unless
    ``retry_failed=False``. With ``report=True`` the batch ends by writing ``out_dir/report.html``.
    """
    from tqdm.auto import tqdm

    experiment = load_experiment(config_or_path)
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    points = experiment.points()
    source = experiment.template_path()
    _check_parameters(source, experiment, points)
    run_dir = Path(out_dir if out_dir is not None else Path("runs") / experiment.name).resolve()
    (run_dir / "points").mkdir(parents=True, exist_ok=True)
    template = run_dir / "template.ipynb"
    if source.resolve() != template:
        shutil.copyfile(source, template)
    write_json_atomic(
        run_dir / "experiment.json",
        {
            **experiment.to_dict(),
            "points": [{"id": p.id, "axes": p.axes, "parameters": p.parameters} for p in points],
        },
    )

    statuses: dict[str, dict[str, Any]] = {}
    todo: list[Point] = []
    skip = {"finished"} if retry_failed else {"finished", "failed"}
    for point in points:
        status = read_status(point_dir(run_dir, point))
        if status is not None and status.get("status") in skip:
            statuses[point.id] = status
        else:
            todo.append(point)
    result = BatchResult(run_dir, points, statuses, skipped=[p.id for p in points if p.id in statuses])

    if todo:
        from distributed import as_completed

        client, cluster = _connect(scheduler, workers, len(todo))
        try:
            futures = {
                client.submit(
                    run_point,
                    str(template),
                    str(point_dir(run_dir, point)),
                    point.parameters,
                    point.id,
                    point.axes,
                    experiment.kernel,
                    experiment.execution_timeout,
                    key=f"ebmlab-point-{point.id}-{os.urandom(4).hex()}",
                    pure=False,
                ): point
                for point in todo
            }
            with tqdm(
                total=len(points), initial=len(result.skipped), desc=experiment.name, unit="point", disable=not progress
            ) as bar:
                for future in as_completed(futures):
                    point = futures[future]
                    try:
                        status = future.result()
                    except Exception as exc:  # the task itself died (e.g. its worker was lost)
                        status = {
                            "id": point.id,
                            "axes": point.axes,
                            "parameters": point.parameters,
                            "status": "failed",
                            "error": f"{type(exc).__name__}: {exc}",
                            "traceback": None,
                        }
                        point_dir(run_dir, point).mkdir(parents=True, exist_ok=True)
                        write_json_atomic(point_dir(run_dir, point) / "status.json", status)
                    statuses[point.id] = status
                    result.executed.append(point.id)
                    bar.update(1)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    if report:
        from .report import write_report

        result.report = write_report(run_dir)
    return result
