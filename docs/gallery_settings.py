"""How much of the demo gallery a docs build executes (``SHADOWGRAD_GALLERY``).

``full`` (default)
    Every demo in ``demos/`` runs as written; its printed output and figures appear in the
    gallery. Demos whose optional dependencies (PyTorch, JAX) are not installed are shown
    as code only, and the build log says which. All six demos take about 40 s on two cores.
``quick``
    Every demo runs with ``--quick`` (fewer training steps), for a fast check while editing.
``none``
    No demo runs (sphinx-gallery's ``plot_gallery=False``); the gallery shows the code only.

sphinx-gallery re-runs a demo only when its file changed since the last build: after switching
modes, delete ``docs/gallery/`` to re-run every demo.

The callables are referenced by name (``"gallery_settings.reset_argv"``) so that Sphinx
can pickle the configuration.
"""

from __future__ import annotations

import importlib.util
import os
import re

from sphinx.util import logging

MODES = ("full", "quick", "none")
ENV = "SHADOWGRAD_GALLERY"

#: gallery order (the quickstart first); demos not listed follow by file name
ORDER = (
    "quickstart.py",
    "shot_frugal_training.py",
    "torch_classifier.py",
    "jax_jit_training.py",
    "quantum_natural_gradient.py",
    "multicopy_fidelity.py",
)

#: demos that need a package outside the core install (the ``test`` extra has them)
OPTIONAL = {"torch_classifier.py": "torch", "jax_jit_training.py": "jax"}

logger = logging.getLogger(__name__)


def mode() -> str:
    value = os.environ.get(ENV, "full").strip().lower() or "full"
    if value not in MODES:
        raise ValueError(f"{ENV}={value!r}: expected one of {', '.join(MODES)}")
    return value


def reset_argv(gallery_conf, script_vars) -> list[str]:
    """Command-line arguments every demo sees: ``--quick`` in quick mode."""
    return ["--quick"] if mode() == "quick" else []


class DemoOrder:
    """Sort key: :data:`ORDER`, then the remaining demos by file name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename: str):
        name = os.path.basename(filename)
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)

    def __repr__(self) -> str:  # stable, so that Sphinx sees an unchanged configuration
        return f"<{type(self).__name__}>"


def gallery_conf() -> dict:
    chosen = mode()
    missing = {f: m for f, m in OPTIONAL.items() if importlib.util.find_spec(m) is None}
    if chosen != "none" and missing:
        logger.info(
            "sphinx-gallery: not executing %s (install %s, e.g. the 'test' extra)",
            ", ".join(sorted(missing)),
            " and ".join(sorted(set(missing.values()))),
        )
    skip = "|".join(re.escape(f) for f in sorted(missing))
    # filename_pattern selects the demos that are executed (matched against the full path)
    pattern = rf"^(?!.*[\\/]({skip})$).*\.py$" if skip else r".*\.py$"
    return {
        "examples_dirs": "../demos",  # relative to docs/
        "gallery_dirs": "gallery",
        "filename_pattern": pattern,
        "plot_gallery": chosen != "none",
        "reset_argv": "gallery_settings.reset_argv",
        "within_subsection_order": "gallery_settings.DemoOrder",
        "download_all_examples": False,
        "remove_config_comments": True,
        "show_memory": False,
        "min_reported_time": 1,
        "capture_repr": ("_repr_html_",),
        "matplotlib_animations": False,
        "write_computation_times": True,
    }
