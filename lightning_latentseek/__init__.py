"""lightning-latentseek: test-time latent optimisation of a frozen LLM (LatentSeek, arXiv 2505.13308)."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"


class _CheckoutCallbacks(importlib.abc.MetaPathFinder):
    """`lightning_latentseek.callbacks` when this package is imported from a source checkout.

    The callbacks live in the repository's top-level ``callbacks/`` folder and are installed as
    ``lightning_latentseek.callbacks`` (pyproject.toml's ``package-dir``). An installed copy, editable or
    not, finds them by itself; a run from a checkout that imports this package from the checkout's
    folder (no install, or another install shadowed by the working directory) finds them here.
    Nothing else is ever importable through this finder.
    """

    def __init__(self, folder: Path):
        self.folder = folder

    def find_spec(self, fullname, path=None, target=None):
        if fullname != f"{__name__}.callbacks":
            return None
        return importlib.util.spec_from_file_location(fullname, self.folder / "__init__.py",
                                                      submodule_search_locations=[str(self.folder)])


_here = Path(__file__).resolve().parent
_checkout_callbacks = _here.parent / "callbacks"
if (not (_here / "callbacks").is_dir() and (_checkout_callbacks / "__init__.py").is_file()
        and (_here.parent / "pyproject.toml").is_file()
        and not any(isinstance(finder, _CheckoutCallbacks) for finder in sys.meta_path)):
    # first: an editable install of another checkout must not answer for this one
    sys.meta_path.insert(0, _CheckoutCallbacks(_checkout_callbacks))
