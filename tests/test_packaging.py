"""The callbacks install and import as `lightning_latentseek.callbacks`, never as a top-level `callbacks`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def outside_env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_every_subpackage_is_listed_and_callbacks_map_to_the_top_level_folder():
    setuptools = pyproject()["tool"]["setuptools"]
    found = {".".join(p.relative_to(ROOT).parent.parts) for p in (ROOT / "lightning_latentseek").rglob("__init__.py")}
    assert set(setuptools["packages"]) == found | {"lightning_latentseek.callbacks"}
    assert setuptools["package-dir"] == {"lightning_latentseek.callbacks": "callbacks"}


def test_outside_the_repository_callbacks_is_not_a_top_level_package(tmp_path):
    """Run from a folder outside the checkout, with the package installed (editable or not)."""
    code = ("import importlib.util, lightning_latentseek.callbacks as c\n"
            "from lightning_latentseek.callbacks import ProblemCallback, RecordWriter, RewardThreshold\n"
            "print(importlib.util.find_spec('callbacks'), c.__name__, RewardThreshold.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=outside_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["None", "lightning_latentseek.callbacks",
                                   "lightning_latentseek.callbacks.reward_threshold"]


def test_a_source_checkout_finds_the_callbacks_without_an_install(tmp_path):
    """`PYTHONPATH=checkout` (or a run from the checkout shadowing another install) imports the callbacks from
    the checkout's top-level folder; nothing else becomes importable through the package."""
    checkout = tmp_path / "checkout"
    for name in ("lightning_latentseek", "callbacks"):
        shutil.copytree(ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", checkout)
    code = ("import importlib.util, lightning_latentseek, lightning_latentseek.callbacks as c\n"
            "print(c.__file__, lightning_latentseek.__file__, importlib.util.find_spec('lightning_latentseek.progress'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**outside_env(), "PYTHONPATH": str(checkout)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [str(checkout / "callbacks" / "__init__.py"),
                                   str(checkout / "lightning_latentseek" / "__init__.py"), "None"]


def test_the_wheel_holds_the_callbacks_under_the_package(tmp_path):
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    for name in ("lightning_latentseek", "callbacks"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(tmp_path / "dist"), str(source)],
                          env=outside_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    callbacks = sorted(n for n in names if "callbacks" in n)
    assert callbacks == sorted(f"lightning_latentseek/callbacks/{p.name}" for p in (ROOT / "callbacks").glob("*.py"))
    assert {n.split("/")[0] for n in names if not n.startswith("lightning_latentseek-")} == {"lightning_latentseek"}
