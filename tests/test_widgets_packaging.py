"""``import ebmlab.widgets`` works from the editable install and from a built wheel (not the source tree),
and no top-level ``widgets`` module is installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = (
    "import json, ebmlab, ebmlab.widgets as widgets\n"
    "from importlib import metadata\n"
    "from ebmlab.widgets import EnergyLandscape, GibbsStepper, RunComparison, RunViewer, TrainingDashboard\n"
    "direct = metadata.distribution('ebmlab').read_text('direct_url.json') or '{}'\n"
    "editable = json.loads(direct).get('dir_info', {}).get('editable', False)\n"
    "print(json.dumps({'widgets': widgets.__file__, 'ebmlab': ebmlab.__file__, 'editable': editable}))"
)


def _probe(cwd: Path, extra_path: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_import_from_the_editable_install(tmp_path) -> None:
    found = _probe(tmp_path)  # run outside the source tree: only the install can find the package
    if not found["editable"]:
        pytest.skip("ebmlab is not installed in editable mode here (make install does that)")
    assert Path(found["widgets"]) == REPO / "ebmlab" / "widgets" / "__init__.py"


@pytest.mark.slow
def test_import_from_a_built_wheel(tmp_path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("ebmlab",):
        shutil.copytree(REPO / package, src / package, ignore=ignore)
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("ebmlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("__init__", "dashboard", "viewer", "comparison", "landscape", "stepper", "images", "throttle"):
        assert f"ebmlab/widgets/{module}.py" in names
    assert not any(name.startswith("widgets/") for name in names)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    found = _probe(tmp_path, extra_path=site)
    assert Path(found["widgets"]) == site / "ebmlab" / "widgets" / "__init__.py"
    assert Path(found["ebmlab"]) == site / "ebmlab" / "__init__.py"
