"""Gradients of PennyLane QNodes that reuse quantum information: classical-shadow and
multi-copy protocols (Abbas et al., NeurIPS 2023).

Importing the package registers ``diff_method="shadow"`` and ``diff_method="gentle-multicopy"``
with PennyLane (see :mod:`pennylane_shadowgrad.registration`).
"""

from .registration import check_pennylane_version as _check_pennylane_version

_check_pennylane_version()

from . import registration  # noqa: E402
from .hessian import shadow_hessian  # noqa: E402
from .metric_tensor import shadow_metric_tensor  # noqa: E402
from .multicopy import WarmStart, gentle_multicopy_grad  # noqa: E402
from .planning import plan  # noqa: E402
from .resources import GradientRecord, record  # noqa: E402
from .second_order import shadow_second_order  # noqa: E402
from .shadow_gradient import shadow_grad  # noqa: E402

registration.register("shadow", shadow_grad)
registration.register("gentle-multicopy", gentle_multicopy_grad)

__version__ = "0.1.0"

__all__ = [
    "GradientRecord",
    "WarmStart",
    "__version__",
    "gentle_multicopy_grad",
    "plan",
    "record",
    "registration",
    "shadow_grad",
    "shadow_hessian",
    "shadow_metric_tensor",
    "shadow_second_order",
]
