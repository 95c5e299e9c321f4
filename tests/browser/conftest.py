"""A real JupyterLab on 127.0.0.1 (token, fresh config/runtime/settings dirs) driven by Playwright.

Chromium is Debian's /usr/bin/chromium (``.ci/run`` installs it); no browser is ever downloaded.
Without it the browser tests skip with a reason, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import CHROMIUM_ARGS, require_chromium

REPO = Path(__file__).resolve().parents[2]
# README screenshots are refreshed only on request (``make screenshots`` sets this to docs/images);
# otherwise the tests write their screenshots into a temporary folder and leave the checkout alone
SCREENSHOTS_ENV = "EBMLAB_SCREENSHOTS"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab: its URL, token and the folder it serves."""

    url: str
    token: str
    root: Path
    log: Path

    def write_notebook(self, name: str, cells: list[str]) -> str:
        """Write a notebook of code cells into the served folder; returns its name."""
        nb = {
            "cells": [
                {"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
                for src in cells
            ],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (self.root / name).write_text(json.dumps(nb))
        return name


@pytest.fixture(scope="package")
def chromium() -> Path:
    return require_chromium()


@pytest.fixture(scope="package")
def lab(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("jupyter")
    root = base / "root"
    settings = base / "settings" / "@jupyterlab" / "apputils-extension"
    for d in (root, settings):
        d.mkdir(parents=True)
    # no news / update pop-ups over the notebook
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_DATA_DIR": str(base / "data"),  # kernels and lab extensions still come from sys.prefix
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "IPYTHONDIR": str(base / "ipython"),
        "OMP_NUM_THREADS": "1",
    }
    token, port = secrets.token_hex(16), _free_port()
    log = base / "lab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
        "--ServerApp.allow_root=True",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"JupyterLab did not start; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    try:
        yield Lab(url=url, token=token, root=root, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="package")
def browser(chromium: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Notebook:
    """A notebook open in JupyterLab in one browser page (a workspace of its own), kernel started.

    ``root`` is the notebook's panel: locate its widgets there, not in the whole page.
    """

    def __init__(self, page, lab: Lab, name: str) -> None:
        self.page, self.lab, self.name = page, lab, name
        workspace = name.removesuffix(".ipynb").replace("/", "-")
        page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{name}?reset&token={lab.token}")
        page.wait_for_function(
            """(name) => {
                const app = window.jupyterapp;
                const w = app && app.shell.currentWidget;
                const kernel = w && w.context && w.context.path === name && w.context.sessionContext.session
                    && w.context.sessionContext.session.kernel;
                return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
            }""",
            arg=name,
            timeout=60_000,
        )
        self.id = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
        self.root = page.locator(f'[id="{self.id}"]')

    def run(self, index: int, expect: str, timeout: float = 60) -> str:
        """Run cell ``index`` and wait until its output shows ``expect``; returns the output text."""
        self.page.evaluate(
            """async ([id, i]) => {
                const app = window.jupyterapp;
                app.shell.activateById(id);
                app.shell.currentWidget.content.activeCellIndex = i;
                await app.commands.execute('notebook:run-cell');
            }""",
            [self.id, index],
        )
        cell = self.root.locator(".jp-Notebook .jp-Cell").nth(index)
        found = cell.locator(".jp-OutputArea").get_by_text(expect)
        stderr = cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        failed = stderr.filter(has_text="Traceback")
        try:
            found.or_(failed).first.wait_for(timeout=timeout * 1000)
            assert found.count(), "the cell raised"
        except Exception as err:
            shot = self.lab.root.parent / f"failure-{self.name}-{index}.png"
            self.page.screenshot(path=str(shot))
            raise AssertionError(
                f"cell {index} of {self.name} never printed {expect!r} (screenshot {shot}); "
                f"output:\n{cell.inner_text()}"
            ) from err
        return cell.locator(".jp-OutputArea").inner_text()

    def close(self) -> None:
        """Shut the kernel down and close the notebook without saving."""
        self.page.evaluate(
            """async (id) => {
                const w = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.id === id);
                if (w) { await w.sessionContext.shutdown(); w.dispose(); }
            }""",
            self.id,
        )


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture(scope="package")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$EBMLAB_SCREENSHOTS`` when set, else a fresh temporary folder."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
