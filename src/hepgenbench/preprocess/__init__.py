"""Invertible per-feature preprocessing, fitted on the training split only.

Each feature carries a spec (set by the dataset's source or the user's config,
``datasets.<name>.transforms.<feature>``) whose ``type`` names a registered map:

``{"type": "standard"}``
    standardisation only.
``{"type": "log", "offset": c}``
    ``log(x + c)``: pT, masses and energies, which fall steeply and stay positive.
``{"type": "bounded", "low": a, "high": b}``
    ``logit((x − a)/(b − a))``: hard limits (φ, cos θ), which every generated value keeps.
``{"type": "dalitz", "given": "m2_23", "m_parent": M, "m1": m₁, "m2": m₂, "m3": m₃}``
    m²₁₂ of M → 1 2 3 as the logit of its place in the interval m²₂₃ allows: with m²₂₃
    ``bounded``, the square Dalitz plot (PDG "Kinematics", eq. 49.23).
``{"type": "pair_mass", "given": [pt₁, η₁, φ₁, η₂, φ₂]}``
    the second muon's pT as log m_μμ (arXiv:2110.13632).
``{"type": "delta_phi", "given": φ_ref}``
    an azimuth as the logit of its opening angle from another's.
``{"type": "fraction_logit", "alpha": α, "threshold": t}``
    a calorimeter cell as the logit of its regularised fraction of E_inc (arXiv:2106.05285).
``{"type": "shower_share", "group": "<layer>", "alpha": α, "threshold": t}``
    a block: every such cell, as the shower's E_tot / E_inc, its layers' shares and each
    cell's share of its layer, by stick breaking (:class:`ShowerShares`).

Each map's class says more (:mod:`.maps`, :mod:`.shower_shares`). After its map, every
feature is standardised with the training mean and standard deviation. Conditions are
standardised, after a log when they are positive (the incident energy spans four decades).
Calorimeter cells also have a *cell space* (:meth:`Preprocessor.forward_cells`): each
cell's fraction of E_inc in units of its mean fraction when it reads out; an empty cell
stays exactly 0 there (the ``hurdlevae`` family). The maps work on numpy arrays and torch
tensors alike, so that a flow trained on an explicit density can pull the target back
through them, and :meth:`Preprocessor.log_abs_det_jacobian` turns a density in network
space into one in physical units.

Adding a map is one class, in any module that is imported before the preprocess stage
runs (in the tree: next to the others, imported below):

.. code-block:: python

    @register_map("sqrt")
    class Sqrt(FeatureMap):
        \"\"\"y = √(x + c), for ...\"\"\"

        keys = {"offset": Key("c in √(x + c)", default=0.0)}  # the spec's keys; no default: required

        def forward(self, x, given=(), e_inc=None):       # physical → coordinate
            return namespace(x).sqrt(x + self.params["offset"])

        def inverse(self, y, given=(), e_inc=None):       # coordinate → physical, for any y
            return y**2 - self.params["offset"]

        def log_abs_det_jacobian(self, x, given=(), e_inc=None):  # log |dy/dx|
            return -namespace(x).log(2 * self.forward(x))

        @classmethod
        def example_events(cls, n, seed):                  # in-domain events for the common checks
            ...

Optionally: ``check`` for conditions among its keys; ``n_given`` and a ``given`` key
(:func:`given`) for a map of one feature given others (the ``x`` of ``forward`` is the
feature, ``given`` the others' physical columns); ``cell`` or ``unit_box``. A map of
several columns at once derives from :class:`BlockMap` instead. The schema's enum of map
types (``workflow/schemas/config.schema.yaml``) lists the registered names, and the common
checks in ``tests/test_maps.py`` run every registered map through its round trip, its
log-Jacobian against autograd and numpy against torch.
"""

from hepgenbench.preprocess.arrays import namespace
from hepgenbench.preprocess.base import (
    MAPS,
    BlockMap,
    FeatureMap,
    Key,
    PreprocessingMap,
    check_specs,
    given,
    map_class,
    map_types,
    register_map,
)
from hepgenbench.preprocess.maps import dalitz_m2_12_range
from hepgenbench.preprocess.preprocessor import (
    Block,
    FeatureTransform,
    Preprocessor,
    cell_types,
)
from hepgenbench.preprocess.shower_shares import ShowerShares

__all__ = [
    "MAPS", "Block", "BlockMap", "FeatureMap", "FeatureTransform", "Key", "PreprocessingMap", "Preprocessor",
    "ShowerShares", "cell_types", "check_specs", "dalitz_m2_12_range", "given", "map_class", "map_types",
    "namespace", "register_map",
]
