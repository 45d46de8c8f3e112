"""Online shadow tomography through the circuit's layers: the gentle multi-copy gradient."""

from .gradient import gentle_multicopy_grad
from .warm_start import WarmStart

__all__ = ["WarmStart", "gentle_multicopy_grad"]
