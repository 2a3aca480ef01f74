"""Old module names kept for one release after a module moved."""

import importlib
import sys
import warnings


def moved(old, new):
    """Makes module `old` an alias of module `new`, with a warning.

    Called by the module left at the old name; returns the new module.
    """
    name = old if old != "__main__" else new
    warnings.warn(
        f"{name} moved to {new}; the old name is removed in the next release.",
        DeprecationWarning,
        stacklevel=3,
    )
    module = importlib.import_module(new)
    if old != "__main__":
        sys.modules[old] = module
    return module
