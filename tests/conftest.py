"""Shared fixtures: deterministic torch settings and the location of ../shared/data."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHROMIUM = Path(os.environ.get("EBMLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> Path:
    """Debian's Chromium for browser tests: skipped when absent locally, a failure under CI."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing under CI; .ci/run must install Debian's chromium")
        pytest.skip(f"{CHROMIUM} is absent (install with: apt-get install -y chromium chromium-driver)")
    return CHROMIUM


BROWSER_DESELECTED = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the tests for ``pytest -n N --dist loadgroup`` (``make test``): all browser tests in one
    worker (they share one JupyterLab and one Chromium), every other module whole in one worker (its
    module-scoped fixtures, e.g. trained runs, are built once). Without Chromium (and outside CI,
    where it is required) leave the browser tests out, said once at the end."""
    for item in items:
        group = "browser" if item.get_closest_marker("browser") else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
    if CHROMIUM.exists() or os.environ.get("CI"):
        return
    browser = [item for item in items if item.get_closest_marker("browser")]
    if browser:
        items[:] = [item for item in items if not item.get_closest_marker("browser")]
        config.hook.pytest_deselected(items=browser)
        config.stash[BROWSER_DESELECTED] = len(browser)
        if hasattr(config, "workeroutput"):  # an xdist worker: tell the controller, which prints the summary
            config.workeroutput["browser_deselected"] = len(browser)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist controller: keep the count of browser tests a worker left out (each collects them all)."""
    count = getattr(node, "workeroutput", {}).get("browser_deselected", 0)
    node.config.stash[BROWSER_DESELECTED] = max(count, node.config.stash.get(BROWSER_DESELECTED, 0))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    skipped = config.stash.get(BROWSER_DESELECTED, 0)
    if skipped:
        terminalreporter.write_sep("-", "browser tests skipped")
        terminalreporter.write_line(
            f"{skipped} browser tests (JupyterLab in headless Chromium) did not run: {CHROMIUM} is absent. "
            "Install it with `apt-get install -y chromium chromium-driver` (or set EBMLAB_CHROMIUM to its path) "
            "to run them; CI installs it and runs them."
        )


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """The tests use tiny tensors: a second intra-op thread only adds synchronisation (and contention
    on a shared 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real MNIST/Fashion-MNIST files not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def python3_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Make papermill's ``python3`` kernel this interpreter (a private kernelspec when it is not already)."""
    from ebmlab.experiments.runner import kernel_python, write_python3_kernel

    if Path(kernel_python("python3")).resolve() == Path(sys.executable).resolve():
        yield
        return
    directory = tmp_path_factory.mktemp("jupyter")
    write_python3_kernel(directory)
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(directory), *([old] if old else [])])
    yield
    if old is None:
        del os.environ["JUPYTER_PATH"]
    else:
        os.environ["JUPYTER_PATH"] = old
