"""The release artefacts: sdist and wheel build, pass ``twine check``, and the wheel runs.

The wheel is installed into a fresh virtual environment (no test extras: only the runtime
dependencies from PyPI) and the quickstart demo runs from it, outside the source tree. Needs
network access to PyPI (the build backend and the runtime dependencies) and a few minutes, so
it is marked ``slow``: ``python -m pytest -m slow tests/test_packaging.py``.
"""

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(*cmd, cwd=None, timeout=1800):
    result = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _version() -> str:
    text = (ROOT / "pennylane_shadowgrad" / "__init__.py").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("__version__"))
    return line.split("=", 1)[1].strip().strip("\"'")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    pytest.importorskip("build", reason="needs the 'build' package (pip install build)")
    out = tmp_path_factory.mktemp("dist")
    # no --sdist/--wheel: the wheel is built from the sdist, so stale files in build/ can never
    # end up in it, and a file missing from the sdist fails the quickstart below
    _run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    return out


def test_sdist_and_wheel_are_built_with_the_one_version(dist):
    version = _version()
    wheels = list(dist.glob("*.whl"))
    sdists = list(dist.glob("*.tar.gz"))
    assert [w.name for w in wheels] == [f"pennylane_shadowgrad-{version}-py3-none-any.whl"]
    assert [s.name for s in sdists] == [f"pennylane_shadowgrad-{version}.tar.gz"]


def test_twine_check_passes(dist):
    pytest.importorskip("twine", reason="needs the 'twine' package (pip install twine)")
    out = _run(sys.executable, "-m", "twine", "check", "--strict", *dist.iterdir())
    assert "PASSED" in out


def test_wheel_installs_in_a_fresh_venv_and_runs_the_quickstart(dist, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    (wheel,) = dist.glob("*.whl")
    _run(python, "-m", "pip", "install", "--quiet", wheel)
    # the license travels with the wheel
    assert "Apache License" in _run(
        python,
        "-c",
        "import importlib.metadata as m; d = m.distribution('pennylane-shadowgrad'); "
        "print(next(f.read_text() for f in d.files if f.name == 'LICENSE'))",
    )
    # run outside the source tree, so that the installed wheel is what gets imported
    work = tmp_path / "run"
    work.mkdir()
    shutil.copy(ROOT / "demos" / "quickstart.py", work / "quickstart.py")
    out = _run(python, "quickstart.py", "--quick", cwd=work)
    assert "60 parameters" in out
    where = _run(
        python, "-c", "import pennylane_shadowgrad as s; print(s.__file__, s.__version__)", cwd=work
    )
    assert str(env_dir) in where and _version() in where
