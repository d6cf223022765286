"""The built wheel installs beside a distribution named `detectors` and both work: `rca` ships its
parsers and detectors inside its own namespace (`rca.parsers`, `rca.detectors`), so it claims no generic
top-level name. No network: the wheel is built with the build backend already installed (hatchling,
in the dev extra; the test skips without it), installed with `--no-index --no-deps` into a fresh virtual
environment that finds the other dependencies in this one."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str | Path, cwd: Path | None = None) -> str:
    # without PYTHONPATH: a checkout on it would be imported instead of the installed wheel (and its
    # top-level detectors/ folder instead of the other distribution)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout


def _dummy_detectors_wheel(directory: Path) -> Path:
    """A minimal wheel of a distribution named `detectors` (as on PyPI) with a top-level `detectors` package."""
    path = directory / "detectors-9.9.9-py3-none-any.whl"
    info = "detectors-9.9.9.dist-info"
    files = {
        "detectors/__init__.py": "MARK = 'the other detectors'\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: detectors\nVersion: 9.9.9\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: rca-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/top_level.txt": "detectors\n",
    }
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr(f"{info}/RECORD", "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"]))
    return path


def test_wheel_installs_beside_a_package_named_detectors(tmp_path):
    pytest.importorskip("hatchling", reason="the build backend is needed to build the wheel offline")
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, ROOT)
    [wheel] = dist.glob("incident_rca-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.startswith("incident_rca-")} == {"rca"}, "only rca at the top level"
    assert "rca/detectors/__init__.py" in names and "rca/parsers/otlp/worker.py" in names

    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    # the dependencies (polars, rich, typer ...) come from this environment; rca itself only from the wheel
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = (sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-index", "--no-deps")
    _run(*pip, _dummy_detectors_wheel(tmp_path))
    _run(*pip, wheel)

    assert _run(env / "bin" / "rca", "--version", cwd=tmp_path).startswith("rca ")
    probe = ("import detectors, rca, rca.detectors, rca.parsers; "
             "print(detectors.MARK); print(rca.__file__); print(len(rca.parsers.all_parsers()) > 5, len(rca.detectors.all_detectors()) > 5)")
    mark, rca_file, registries = _run(python, "-c", probe, cwd=tmp_path).splitlines()
    assert mark == "the other detectors"
    assert Path(rca_file).is_relative_to(site), "rca is imported from the installed wheel, not the checkout"
    assert registries == "True True"
