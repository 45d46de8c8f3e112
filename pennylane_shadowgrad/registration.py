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


#: Attribute of our wrappers that holds the PennyLane function they wrap.
_WRAPPED = "_pennylane_shadowgrad_wraps"


def _pennylane_function(func):
    """The PennyLane function under ``func`` and any of our wrappers around it.

    Wrappers of an earlier copy of this module (``importlib.reload``, or the package imported
    twice under different paths) are unwrapped too, so that :func:`install` never takes one of
    them for PennyLane's original and :func:`uninstall` really restores PennyLane's.
    """
    while hasattr(func, _WRAPPED):
        func = getattr(func, _WRAPPED)
    return func


def _original(wrapper, key: str):
    """What ``wrapper`` delegates to: PennyLane's function (also once uninstalled, when a
    wrapper is still reachable, e.g. held by another plugin that wrapped it in turn)."""
    return _ORIGINALS.get(key) or _pennylane_function(wrapper)


def _validate_diff_method(device, diff_method):
    if _ORIGINALS and isinstance(diff_method, str) and diff_method in _REGISTRY:
        return None
    return _original(_validate_diff_method, "validate")(device, diff_method)


def _refuse_higher_derivatives(config) -> None:
    """Refuse ``max_diff >= 2`` for our transforms at resolution, before any device execution.

    Their estimates are computed from measurement samples, which have no derivative: under
    ``max_diff=2`` PennyLane would differentiate the gradient itself, which crashes under
    ``jax.jacfwd``/``jax.hessian`` and silently gives zero Hessians under torch.
    """
    names = [n for n, t in _REGISTRY.items() if t is config.gradient_method]
    if not names or config.derivative_order < 2:
        return
    raise NotImplementedError(
        f"diff_method='{names[0]}' does not support second derivatives (max_diff="
        f"{config.derivative_order}, Hessians): its estimates are computed from measurement "
        "samples, which have no derivative. Use max_diff=1 (the default) for gradients and "
        "Jacobians; every interface supports it (under jax: jax.grad, jax.jacrev and "
        "jax.jacfwd). For Hessians from the same kind of snapshots use "
        "pennylane_shadowgrad.shadow_hessian(qnode)(*args) (or shadow_second_order for "
        "gradient, Hessian and metric tensor from one round); PennyLane's "
        "diff_method='parameter-shift' with max_diff=2 also works."
    )


def _resolve_diff_method(initial_config, device, tape=None):
    if not _ORIGINALS:  # uninstalled, but still reachable (see _original)
        return _original(_resolve_diff_method, "resolve")(initial_config, device, tape)
    method = initial_config.gradient_method
    if isinstance(method, str) and method in _REGISTRY:
        initial_config = replace(initial_config, gradient_method=_REGISTRY[method])
    _refuse_higher_derivatives(initial_config)
    return _ORIGINALS["resolve"](initial_config, device, tape)


def register(name: str, transform) -> None:
    """Make ``diff_method=name`` resolve to the gradient ``transform`` (and install hooks)."""
    _REGISTRY[name] = transform
    install()


def install() -> None:
    """Wrap PennyLane's diff-method validation and resolution (idempotent)."""
    check_pennylane_version()
    workflow_resolve = getattr(qml.workflow, "_resolve_diff_method", None)
    if (
        _ORIGINALS
        and _qnode_module._validate_diff_method is _validate_diff_method
        and _resolution_module._resolve_diff_method is _resolve_diff_method
        and workflow_resolve in (None, _resolve_diff_method)
    ):
        return
    _ORIGINALS["validate"] = _pennylane_function(_qnode_module._validate_diff_method)
    _ORIGINALS["resolve"] = _pennylane_function(_resolution_module._resolve_diff_method)
    _ORIGINALS["workflow_resolve"] = (
        None if workflow_resolve is None else _pennylane_function(workflow_resolve)
    )
    setattr(_validate_diff_method, _WRAPPED, _ORIGINALS["validate"])
    setattr(_resolve_diff_method, _WRAPPED, _ORIGINALS["resolve"])
    _qnode_module._validate_diff_method = _validate_diff_method
    _resolution_module._resolve_diff_method = _resolve_diff_method
    if workflow_resolve is not None:
        qml.workflow._resolve_diff_method = _resolve_diff_method


def uninstall() -> None:
    """Restore PennyLane's own functions (the registered names stop resolving).

    Also removes wrappers left by an earlier copy of this module; a wrapper that stays
    reachable (held by another plugin that wrapped it) passes every call to PennyLane.

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
    _qnode_module._validate_diff_method = _pennylane_function(_qnode_module._validate_diff_method)
    _resolution_module._resolve_diff_method = _pennylane_function(
        _resolution_module._resolve_diff_method
    )
    workflow_resolve = getattr(qml.workflow, "_resolve_diff_method", None)
    if workflow_resolve is not None:
        qml.workflow._resolve_diff_method = _pennylane_function(workflow_resolve)
    _ORIGINALS.clear()


def registered_methods() -> tuple[str, ...]:
    """The diff-method strings this package registers.

    **Example**

    >>> import pennylane_shadowgrad
    >>> pennylane_shadowgrad.registration.registered_methods()
    ('shadow', 'gentle-multicopy')
    """
    return tuple(_REGISTRY)
