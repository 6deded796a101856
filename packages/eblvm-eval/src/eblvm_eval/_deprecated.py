"""Old names kept for one minor version: an MCMC step was called a "kernel" until 0.4.0;
it is a "transition" now, and "kernel" is left to the KSD's positive-definite kernel."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable

RENAMED_IN_0_4 = {
    "ais_kernel": "ais_transition",
    "gibbs_kernel": "gibbs_transition",
    "hmc_kernel": "hmc_transition",
    "langevin_kernel": "langevin_transition",
    "GibbsKernel": "GibbsTransition",
    "HMCKernel": "HMCTransition",
    "LangevinKernel": "LangevinTransition",
}


def renamed_attributes(module: str, names: tuple[str, ...]) -> Callable[[str], object]:
    """A module ``__getattr__`` that gives each old name among ``names`` the object of its
    new name in ``module``, with a DeprecationWarning; other names raise AttributeError."""
    old_names = {old: new for old, new in RENAMED_IN_0_4.items() if new in names}

    def __getattr__(name: str) -> object:
        if name in old_names:
            new = old_names[name]
            warnings.warn(
                f"{module}.{name} is deprecated since eblvm-eval 0.4.0 and will be removed in "
                f"0.5.0: use {new}",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(sys.modules[module], new)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
