"""The one place that teaches PennyLane the diff-method strings of this package.

PennyLane has no registry for ``diff_method`` strings: a QNode validates the string in
``pennylane.workflow.qnode._validate_diff_method`` and resolves it to a transform in
``pennylane.workflow.resolution._resolve_diff_method``. :func:`install` wraps both (and the
re-export in ``pennylane.workflow``) so that registered names resolve to their transforms and
every other name goes to PennyLane unchanged. It is idempotent; :func:`uninstall` restores the
originals. It cannot work under ``qml.capture`` (PennyLane's own parameter-shift cannot either).
"""

from __future__ import annotations

import importlib
from dataclasses import replace

import pennylane as qml

# ``pennylane.workflow.qnode`` is shadowed by the ``qnode`` function: import the modules.
_qnode_module = importlib.import_module("pennylane.workflow.qnode")
_resolution_module = importlib.import_module("pennylane.workflow.resolution")

#: PennyLane versions whose private hooks this module has been checked against.
SUPPORTED_PENNYLANE = ((0, 45), (0, 45))

_REGISTRY: dict[str, object] = {}
_ORIGINALS: dict[str, object] = {}


def _version() -> tuple[int, int]:
    major, minor = qml.__version__.split(".")[:2]
    return int(major), int(minor)


def check_pennylane_version() -> None:
    """Raise ``ImportError`` when the installed PennyLane is outside the supported range."""
    low, high = SUPPORTED_PENNYLANE
    if not low <= _version() <= high:
        raise ImportError(
            f"pennylane-shadowgrad supports PennyLane {low[0]}.{low[1]} to {high[0]}.{high[1]}.x "
            f"(it hooks PennyLane's diff-method resolution), but PennyLane {qml.__version__} "
            "is installed. Install a supported version, e.g. pip install 'pennylane==0.45.*'."
        )


def _validate_diff_method(device, diff_method):
    if isinstance(diff_method, str) and diff_method in _REGISTRY:
        return None
    return _ORIGINALS["validate"](device, diff_method)


def _resolve_diff_method(initial_config, device, tape=None):
    method = initial_config.gradient_method
    if isinstance(method, str) and method in _REGISTRY:
        initial_config = replace(initial_config, gradient_method=_REGISTRY[method])
    return _ORIGINALS["resolve"](initial_config, device, tape)


def register(name: str, transform) -> None:
    """Make ``diff_method=name`` resolve to the gradient ``transform`` (and install hooks)."""
    _REGISTRY[name] = transform
    install()


def install() -> None:
    """Wrap PennyLane's diff-method validation and resolution (idempotent)."""
    if _ORIGINALS:
        return
    check_pennylane_version()
    _ORIGINALS["validate"] = _qnode_module._validate_diff_method
    _ORIGINALS["resolve"] = _resolution_module._resolve_diff_method
    _ORIGINALS["workflow_resolve"] = getattr(qml.workflow, "_resolve_diff_method", None)
    _qnode_module._validate_diff_method = _validate_diff_method
    _resolution_module._resolve_diff_method = _resolve_diff_method
    if _ORIGINALS["workflow_resolve"] is not None:
        qml.workflow._resolve_diff_method = _resolve_diff_method


def uninstall() -> None:
    """Restore PennyLane's own functions (the registered names stop resolving).

    **Example**

    >>> import pennylane as qml
    >>> from pennylane_shadowgrad import registration
    >>> registration.uninstall()
    >>> try:
    ...     qml.QNode(lambda: qml.expval(qml.Z(0)), qml.device("default.qubit"),
    ...               diff_method="shadow")
    ... except Exception as err:
    ...     print(type(err).__name__)
    QuantumFunctionError
    >>> registration.install()  # "shadow" resolves again
    """
    if not _ORIGINALS:
        return
    _qnode_module._validate_diff_method = _ORIGINALS["validate"]
    _resolution_module._resolve_diff_method = _ORIGINALS["resolve"]
    if _ORIGINALS["workflow_resolve"] is not None:
        qml.workflow._resolve_diff_method = _ORIGINALS["workflow_resolve"]
    _ORIGINALS.clear()


def registered_methods() -> tuple[str, ...]:
    """The diff-method strings this package registers.

    **Example**

    >>> import pennylane_shadowgrad
    >>> pennylane_shadowgrad.registration.registered_methods()
    ('shadow', 'gentle-multicopy')
    """
    return tuple(_REGISTRY)
