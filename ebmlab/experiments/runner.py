"""Run one point of a batch: execute the template notebook with papermill into the point's folder.

The folder ends up holding ``parameters.json``, the executed ``notebook.ipynb``, the cells' output in
``log.txt``, the kernel process's own log in ``kernel.log`` (see ``kernel_options``), whatever the
notebook writes there (history store, model, figures) and ``status.json``,
written atomically (temporary file + rename): ``running`` while it runs, then ``finished`` or
``failed`` with the error text and traceback. ``run_point`` is the task Dask workers import, so it
lives in the installed package and takes and returns plain JSON-able values only.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import platform
import re
import sys
import time
import traceback
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
NOTEBOOK_FILE = "notebook.ipynb"
LOG_FILE = "log.txt"
KERNEL_LOG_FILE = "kernel.log"
PARAMETERS_FILE = "parameters.json"
HEADLESS_ENV = "EBMLAB_HEADLESS"
PACKAGES = ("ebmlab", "torch", "numpy", "xarray", "zarr", "papermill", "dask", "distributed", "plotly")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def versions() -> dict[str, str]:
    """Python and package versions of this process (``"not installed"`` where missing)."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def write_json_atomic(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as JSON to ``path`` through a temporary file and ``os.replace`` (atomic on POSIX)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
    return path


def read_status(point_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The point's ``status.json`` as a dict, or ``None`` when it has none (never ran) or it is unreadable."""
    path = Path(point_dir) / STATUS_FILE
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def kernel_python(kernel_name: str = "python3") -> str:
    """The interpreter a Jupyter kernel runs (``python`` in a kernelspec means this process's own)."""
    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec(kernel_name).argv
    major, minor = sys.version_info[:2]
    return sys.executable if argv[0] in {"python", f"python{major}", f"python{major}.{minor}"} else argv[0]


def write_python3_kernel(directory: str | os.PathLike) -> Path:
    """Write a ``python3`` kernelspec running this interpreter under ``directory/kernels``; return its folder.

    Prepend ``directory`` to ``JUPYTER_PATH`` (in this process before it starts workers, or in the
    workers' environment) to make it the ``python3`` kernel that papermill finds, e.g. when another
    ``python3`` kernel on the machine points at an interpreter without ebmlab.
    """
    folder = Path(directory) / "kernels" / "python3"
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 ({sys.executable})",
        "language": "python",
    }
    write_json_atomic(folder / "kernel.json", spec)
    return folder


@functools.cache
def _point_kernel_manager() -> type:
    """jupyter_client's AsyncKernelManager, launching the kernel with its stdout/stderr in ``kernel_log``."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Unicode

    class PointKernelManager(AsyncKernelManager):
        kernel_log = Unicode("", config=True, help="file receiving the kernel process's stdout and stderr")

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            if not self.kernel_log:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            with open(self.kernel_log, "ab") as log:  # the child keeps its own copy of the descriptor
                return await super()._async_launch_kernel(kernel_cmd, **{"stdout": log, "stderr": log, **kw})

    return PointKernelManager


def kernel_options(kernel_log: str | os.PathLike) -> dict[str, Any]:
    """papermill keyword arguments that keep the kernel process's own log out of the batch's terminal.

    The kernel (ipykernel) logs to the stderr it inherits from the Dask worker: "Kernel is running
    over TCP without encryption" at start-up, and "KeyboardInterrupt caught in kernel" when
    jupyter_client interrupts it on shutdown. Its stdout/stderr go to ``kernel_log`` instead (a crash
    still fails the point, and its output is kept there), and where jupyter_client, pyzmq and the
    kernelspec support it the connection is CurveZMQ-encrypted (``transport_encryption="auto"``),
    which removes the cause of the first line.
    """
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    manager = _point_kernel_manager()
    config = Config({manager.__name__: {"kernel_log": str(kernel_log)}})
    if "transport_encryption" in KernelManager.class_trait_names() and zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    return {"kernel_manager_class": manager, "config": config}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_point(
    template: str,
    point_dir: str,
    parameters: Mapping[str, Any],
    point_id: str | None = None,
    axes: Mapping[str, Any] | None = None,
    kernel_name: str = "python3",
    execution_timeout: float | None = None,
) -> dict[str, Any]:
    """Execute ``template`` with ``parameters`` plus ``out=point_dir``; return the final status dict.

    Never raises for a failing notebook: the error (exception name and message) and the traceback
    (ANSI colours stripped) go into the status, which is also written to ``point_dir/status.json``.
    The kernel inherits ``EBMLAB_HEADLESS=1`` so templates can skip interactive widgets.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    folder = Path(point_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    parameters = {**parameters, "out": str(folder)}
    write_json_atomic(folder / PARAMETERS_FILE, parameters)
    status: dict[str, Any] = {
        "id": point_id or folder.name,
        "axes": dict(axes or {}),
        "parameters": parameters,
        "template": str(template),
        "host": platform.node(),
        "pid": os.getpid(),
        "started": _now(),
        "status": "running",
        "versions": versions(),
    }
    write_json_atomic(folder / STATUS_FILE, status)
    os.environ[HEADLESS_ENV] = "1"
    start = time.perf_counter()
    try:
        status["kernel_python"] = kernel_python(kernel_name)
        with (folder / LOG_FILE).open("w") as log:
            papermill.execute_notebook(
                str(template),
                str(folder / NOTEBOOK_FILE),
                parameters=parameters,
                kernel_name=kernel_name,
                cwd=str(folder),
                progress_bar=False,
                stdout_file=log,
                stderr_file=log,
                execution_timeout=execution_timeout,
                **kernel_options(folder / KERNEL_LOG_FILE),
            )
        status.update(status="finished", error=None, traceback=None)
    except PapermillExecutionError as exc:
        tb = "\n".join(exc.traceback) if exc.traceback else traceback.format_exc()
        status.update(
            status="failed", error=f"{exc.ename}: {exc.evalue} (In [{exc.exec_count}])", traceback=_ANSI.sub("", tb)
        )
    except Exception as exc:  # any failure of this point is recorded, never raised to the batch
        status.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    status["ended"] = _now()
    status["seconds"] = round(time.perf_counter() - start, 3)
    write_json_atomic(folder / STATUS_FILE, status)
    return status
