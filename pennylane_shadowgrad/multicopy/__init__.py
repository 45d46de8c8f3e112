"""Online shadow tomography through the circuit's layers: the gentle multi-copy gradient."""

from .gradient import gentle_multicopy_grad

__all__ = ["gentle_multicopy_grad"]
