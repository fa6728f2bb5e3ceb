"""Generator families. Importing this package registers every family in
:data:`hepgenbench.models.base.REGISTRY` under its config name."""

from hepgenbench.models import cfm, flows, gan, vae  # noqa: F401  (registration side effect)
from hepgenbench.models.base import REGISTRY, Generator, TrainingLog, TrainSettings, build, from_export

__all__ = ["REGISTRY", "Generator", "TrainSettings", "TrainingLog", "build", "from_export"]
