"""Without Chromium, a test run says once, at the end, that the browser tests were left out and how to run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_missing_chromium_is_reported_once() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["EBMLAB_CHROMIUM"] = str(REPO / "no-such-chromium")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/browser/test_comparison.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 5, out  # every collected test was a browser test: nothing ran
    assert out.count("browser tests (JupyterLab in headless Chromium) did not run") == 1, out
    assert "apt-get install -y chromium" in out and "CI installs it" in out
    assert "deselected" in out and "SKIPPED" not in out
