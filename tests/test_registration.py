"""Registration leaves PennyLane's own diff methods untouched and guards the PennyLane version."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pennylane as qml
import pytest

import pennylane_shadowgrad
from pennylane_shadowgrad import registration

BUILTINS = ["parameter-shift", "adjoint", "backprop", "spsa", "finite-diff", "hadamard"]

_SCRIPT = """
import json, sys
import numpy as np
import pennylane as qml
if sys.argv[1] == "with":
    import pennylane_shadowgrad  # noqa: F401
    import pennylane_qiskit  # noqa: F401  another plugin alongside
def circuit(x):
    qml.RX(x[0], 0); qml.RY(x[1], 1); qml.CNOT([0, 1]); qml.CRX(x[0], [1, 0])
    return qml.expval(qml.Z(0) @ qml.X(1))
out = {}
for m in %r:
    shots = 1000 if m in ("spsa", "hadamard") else None
    kw = {"gradient_kwargs": {"sampler_rng": 7}} if m == "spsa" else {}
    dev = qml.device("default.qubit", wires=3, seed=11)
    q = qml.set_shots(qml.QNode(circuit, dev, diff_method=m, **kw), shots)
    out[m] = np.asarray(qml.grad(q)(qml.numpy.array([0.3, 0.7]))).tolist()
print(json.dumps(out))
"""


def _run_script(mode: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT % (BUILTINS,), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip().splitlines()[-1]


def test_builtins_identical_with_and_without_package():
    pytest.importorskip("pennylane_qiskit")
    without = json.loads(_run_script("none"))  # a process that never imports the package
    with_pkg = json.loads(_run_script("with"))
    assert without.keys() == with_pkg.keys() == set(BUILTINS)
    for m in BUILTINS:
        assert np.array_equal(without[m], with_pkg[m]), m


def test_builtins_identical_after_uninstall_in_process():
    def grads():
        out = {}
        for m in ["parameter-shift", "adjoint", "backprop", "finite-diff"]:
            q = qml.QNode(_circuit, qml.device("default.qubit", wires=2), diff_method=m)
            out[m] = np.asarray(qml.grad(q)(qml.numpy.array([0.3, 0.7])))
        return out

    installed = grads()
    registration.uninstall()
    try:
        plain = grads()
        with pytest.raises(Exception, match="shadow"):
            qml.QNode(_circuit, qml.device("default.qubit"), diff_method="shadow")
    finally:
        registration.install()
    for m, g in installed.items():
        assert np.array_equal(g, plain[m])


def _circuit(x):
    qml.RX(x[0], 0)
    qml.RY(x[1], 1)
    qml.CNOT([0, 1])
    return qml.expval(qml.Z(1))


def test_import_twice_and_reload_is_idempotent():
    import importlib

    original = registration._ORIGINALS["validate"]
    registration.install()
    importlib.import_module("pennylane_shadowgrad")
    assert registration._ORIGINALS["validate"] is original
    assert "shadow" in registration.registered_methods()
    code = (
        "import importlib, pennylane_shadowgrad as a; importlib.reload(a); import pennylane as qml;"
        "from pennylane.workflow import qnode as _;"
        "q = qml.QNode(lambda: qml.expval(qml.Z(0)), qml.device('default.qubit', wires=1),"
        " diff_method='parameter-shift'); print(q())"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_shadow_in_subprocess():
    code = (
        "import pennylane as qml, pennylane_shadowgrad;"
        "dev = qml.device('default.qubit', wires=1, seed=1);"
        "q = qml.QNode(lambda x: (qml.RX(x, 0), qml.expval(qml.Z(0)))[1], dev,"
        " diff_method='shadow', shots=300);"
        "print(float(qml.grad(q)(qml.numpy.array(0.4, requires_grad=True))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert -1.5 < float(proc.stdout.strip().splitlines()[-1]) < 0.7


@pytest.mark.parametrize("version", ["0.44.1", "0.46.0", "1.0.0"])
def test_unsupported_pennylane_version_is_refused(monkeypatch, version):
    monkeypatch.setattr(qml, "__version__", version)
    with pytest.raises(ImportError, match=r"supports PennyLane 0\.45"):
        registration.check_pennylane_version()


def test_supported_version_passes(monkeypatch):
    monkeypatch.setattr(qml, "__version__", "0.45.3")
    registration.check_pennylane_version()


def test_import_refuses_unsupported_version_in_subprocess():
    code = "import pennylane as qml; qml.__version__ = '0.40.0';import pennylane_shadowgrad"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "supports PennyLane 0.45" in proc.stderr
    assert pennylane_shadowgrad.__version__
