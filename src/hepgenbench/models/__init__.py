"""Generator families. Importing this package imports every module in it, and each module
registers its families in :data:`hepgenbench.models.base.REGISTRY` under their config
names: adding a family is adding a module. Families of installed packages (the
``hepgenbench.models`` entry-point group) join on first use, through :func:`families`."""

import importlib
import pkgutil

from hepgenbench.models.base import (
    REGISTRY,
    Generator,
    TrainingLog,
    TrainSettings,
    build,
    families,
    from_export,
    register,
    resolve,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "Generator", "TrainSettings", "TrainingLog", "build", "families", "from_export", "register", "resolve"]
