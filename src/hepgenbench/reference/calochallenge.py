"""The CaloChallenge 2022's published results, carried by the project as facts.

Source: C. Krause et al., "CaloChallenge
2022: A Community Challenge for Fast Calorimeter Simulation", arXiv:2410.21611, its
results tables per dataset. ``calochallenge_results.csv`` holds, per dataset and
submission (``submission_id`` as the challenge numbers them; ``GEANT4`` is the
Geant4-vs-Geant4 reference, the challenge's floor):

* ``auc_low``, ``auc_high`` (± ``_std``): the challenge's binary classifier on the voxels
  and on its high-level features; ``auc_cnn`` its convolutional one (datasets 2 and 3);
* ``fpd_x1e3``, ``kpd_x1e3`` (± ``_std``): FPD and KPD on the high-level features, × 10³;
* ``precision``, ``recall``, ``density``, ``coverage``: PRDC (arXiv:2002.09797);
* ``params_training``, ``params_generation``: parameters of the model trained and of
  the one that generates;
* ``time_{cpu,gpu}_{1,100,10000}_ms`` (± ``_std``): generation time per shower in
  milliseconds at batch sizes 1, 100 and 10,000.

Empty cells are figures the challenge does not give. All of them are computed on the
official samples with the challenge's own evaluation; they frame a user's numbers, and
rank them only where the user ran the same classifier (``c2st_classifier: cc22``) on
the same dataset at the same sample size.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from hepgenbench.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

#: The values of a calo dataset's ``calochallenge:`` key.
DATASETS = ("ds1-photons", "ds1-pions", "ds2", "ds3")
CITATION = "arXiv:2410.21611"
#: The Geant4-vs-Geant4 row of every dataset: the challenge's own floor.
GEANT4 = "GEANT4"
_TABLE = "calochallenge_results.csv"


def published_results(dataset: str) -> pd.DataFrame:
    """The published rows of ``dataset`` (one of :data:`DATASETS`), Geant4 first, indexed
    by ``submission``; the columns are the module's."""
    import pandas as pd

    if dataset not in DATASETS:
        raise InputError(f"calochallenge: '{dataset}' is not a CaloChallenge dataset; expected one of {list(DATASETS)}")
    with resources.files(__package__).joinpath(_TABLE).open("r", encoding="utf-8") as f:
        table = pd.read_csv(f)
    rows = table[table["dataset"] == dataset].drop(columns="dataset")
    return rows.sort_values("submission_id").set_index("submission")
