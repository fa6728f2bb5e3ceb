"""The common checks, run over every registered preprocessing map, as scikit-learn's
``check_estimator`` runs over every estimator: the round trip both ways, the log-Jacobian
against torch autograd, and numpy equal to torch. Each map runs on its own
``example_events`` (with the features it is given) through a fitted :class:`Preprocessor`,
as the stages use it. Tests of a map's physics live in ``test_preprocess.py``.
"""

import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest
import torch
import yaml

from hepgenbench import kinds
from hepgenbench.errors import InputError
from hepgenbench.io import EventSet
from hepgenbench.preprocess import (
    MAPS,
    BlockMap,
    FeatureMap,
    Key,
    Preprocessor,
    check_specs,
    map_types,
    namespace,
    register_map,
)

MAP_TYPES = sorted(MAPS)


def fitted(name: str, n: int = 400, seed: int = 0) -> tuple[EventSet, Preprocessor]:
    events = MAPS[name].example_events(n, seed)
    assert name in [t["type"] for t in events.transforms], f"map '{name}''s example_events do not use it"
    return events, Preprocessor.fit(events)


def as_tensors(*arrays):
    return [None if a is None else torch.as_tensor(a, dtype=torch.float64) for a in arrays]


@pytest.mark.parametrize("name", MAP_TYPES)
def test_round_trip_physical_to_network_and_back(name):
    events, pre = fitted(name)
    u = pre.forward(events.features, events.condition)
    assert np.isfinite(u).all()
    np.testing.assert_allclose(u.mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(u.std(0), 1.0, atol=1e-9)
    back = pre.inverse(u, events.condition)
    np.testing.assert_allclose(back, events.features, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", MAP_TYPES)
def test_round_trip_network_to_physical_and_back(name):
    """Any point a model generates (here in the standardised range) is a physical value
    that maps back onto it."""
    events, pre = fitted(name)
    u = np.random.default_rng(1).standard_normal((len(events), events.n_features))
    x = pre.inverse(u, events.condition)
    assert np.isfinite(x).all()
    np.testing.assert_allclose(pre.forward(x, events.condition), u, atol=1e-6)


@pytest.mark.parametrize("name", MAP_TYPES)
def test_log_jacobian_is_autograds_log_determinant(name):
    """Σ of the maps' log-derivatives (and blocks' log-determinants) minus the log std's
    equals log |det ∂u/∂x| of the whole forward map, cross terms of dependent maps included."""
    events, pre = fitted(name)
    x, cond = as_tensors(events.features[:12], events.condition[:12] if events.condition is not None else None)
    analytic = pre.log_abs_det_jacobian(x, cond)
    index = {n: j for j, n in enumerate(events.feature_names)}
    coupled = []
    for i in range(len(x)):
        c = None if cond is None else cond[i:i + 1]
        jac = torch.autograd.functional.jacobian(lambda row, c=c: pre.forward(row[None], c)[0], x[i])
        assert torch.linalg.slogdet(jac).logabsdet.item() == pytest.approx(analytic[i].item(), abs=1e-9)
        coupled += [jac[j, index[g]].item() for j, m in pre.feature_maps.items() for g in m.depends_on()]
    # where a map is given other features, its coupling is real, so a wrong sum would show
    assert not coupled or np.all(np.abs(coupled) > 0)


@pytest.mark.parametrize("name", MAP_TYPES)
def test_numpy_and_torch_give_the_same_numbers(name):
    events, pre = fitted(name)
    x, cond = events.features, events.condition
    xt, ct = as_tensors(x, cond)
    u = pre.forward(x, cond)
    np.testing.assert_allclose(pre.forward(xt, ct).numpy(), u, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pre.log_abs_det_jacobian(xt, ct).numpy(), pre.log_abs_det_jacobian(x, cond),
                               rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(2).standard_normal(u.shape) * 3
    np.testing.assert_allclose(pre.inverse(torch.as_tensor(w), ct).numpy(), pre.inverse(w, cond),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", MAP_TYPES)
def test_fitted_maps_survive_json(name):
    events, pre = fitted(name)
    again = Preprocessor.from_dict(yaml.safe_load(yaml.safe_dump(pre.to_dict())))
    np.testing.assert_array_equal(again.forward(events.features, events.condition),
                                  pre.forward(events.features, events.condition))


def test_every_map_is_a_feature_or_a_block_map_and_its_name_is_its_type():
    assert set(MAP_TYPES) == {"standard", "log", "bounded", "dalitz", "pair_mass", "delta_phi", "fraction_logit",
                              "shower_share"}
    for name, cls in MAPS.items():
        assert cls.type_name == name and issubclass(cls, (FeatureMap, BlockMap))


def _schema_enums(node, under_transforms=False):
    """Every ``type`` enum of a transform spec in the config schema, wherever it sits."""
    if isinstance(node, dict):
        if under_transforms and "enum" in node.get("properties", {}).get("type", {}):
            yield node["properties"]["type"]["enum"]
        for key, child in node.items():
            yield from _schema_enums(child, under_transforms or key == "transforms")
    elif isinstance(node, list):
        for child in node:
            yield from _schema_enums(child, under_transforms)


def test_the_schema_enum_of_map_types_is_the_registry():
    """Every source's schema fragment (hepgenbench.kinds) takes its map types from the registry."""
    enums = list(_schema_enums(kinds.dataset_schema()))
    assert enums, "the schema lists no transform types"
    for enum in enums:
        assert sorted(enum) == MAP_TYPES


def test_a_config_with_an_unknown_map_type_fails_naming_the_key_and_the_known_types():
    block = {"source": "root", "files": "mine.root", "tree": "Events", "branches": ["Muon1_pt"],
             "transforms": {"Muon1_pt": {"type": "sqrt"}}}
    with pytest.raises(InputError) as err:
        kinds.validate_dataset("mine", block)
    assert str(err.value) == (f"config key datasets.mine.transforms.Muon1_pt.type: 'sqrt' is not one of "
                              f"{list(map_types())}")
    # the library says the same where the schema is not in the way (a dataset's own specs)
    with pytest.raises(InputError, match=f"config key datasets.zmumu.transforms.Muon1_pt: unknown transform type "
                                         f"'sqrt'; known: {', '.join(map_types())}$"):
        check_specs({"Muon1_pt": {"type": "sqrt"}}, "datasets.zmumu.transforms")
    # and a map's own keys are checked with the dataset, before any job runs
    block["transforms"] = {"Muon1_pt": {"type": "log", "ofset": 1.0}}
    with pytest.raises(InputError, match=r"datasets.mine.transforms.Muon1_pt: 'log' has no key\(s\) \['ofset'\]"):
        kinds.validate_dataset("mine", block)


@pytest.mark.parametrize("spec, message", [
    ({"type": "log", "ofset": 1.0}, r"'log' has no key\(s\) \['ofset'\]; its keys: \['offset'\]"),
    ({"type": "bounded", "low": 0}, r"'bounded' needs \['high'\] \(high: the upper limit b\)"),
    ({"type": "bounded", "low": "zero", "high": 1}, r"'bounded' key 'low' \(the lower limit a\) cannot be 'zero'"),
    ({"type": "pair_mass", "given": ["a", "b"]}, "'pair_mass' needs given = 5 feature name"),
    ({"type": "delta_phi", "given": 3}, "'delta_phi' key 'given' .* cannot be 3"),
])
def test_spec_keys_are_checked_before_any_job_runs(spec, message):
    with pytest.raises(InputError, match=f"^config key datasets.d.transforms.x: {message}"):
        check_specs({"x": spec}, "datasets.d.transforms")


def test_the_registry_imports_without_torch():
    """The schema and the workflow may list the maps while parsing, which must not import torch."""
    code = "import sys, hepgenbench.preprocess as p; assert 'torch' not in sys.modules; print(','.join(p.map_types()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert sorted(out.strip().split(",")) == MAP_TYPES


def test_a_registered_name_is_not_taken_twice():
    with pytest.raises(ValueError, match="'log' is already registered by Log"):
        register_map("log")(type("OtherLog", (FeatureMap,), {}))


@pytest.fixture
def sqrt_map():
    """The module docstring's recipe, registered for one test."""

    class Sqrt(FeatureMap):
        keys: ClassVar[dict[str, Key]] = {"offset": Key("c in √(x + c)", default=0.0)}

        def forward(self, x, given=(), e_inc=None):
            return namespace(x).sqrt(x + self.params["offset"])

        def inverse(self, y, given=(), e_inc=None):
            return y**2 - self.params["offset"]

        def log_abs_det_jacobian(self, x, given=(), e_inc=None):
            return -namespace(x).log(2 * self.forward(x))

        @classmethod
        def example_events(cls, n, seed):
            x = np.random.default_rng(seed).gamma(2.0, 3.0, (n, 1))
            return EventSet(x, ["x"], transforms=[{"type": "sqrt", "offset": 1.0}])

    register_map("sqrt")(Sqrt)
    yield "sqrt"
    del MAPS["sqrt"]


def test_a_new_map_is_one_class_and_the_common_checks_apply_to_it(sqrt_map):
    events, pre = fitted(sqrt_map)
    u = pre.forward(events.features)
    np.testing.assert_allclose(u[:, 0] * pre.features[0].std + pre.features[0].mean, np.sqrt(events.features[:, 0] + 1))
    for check in (test_round_trip_physical_to_network_and_back, test_log_jacobian_is_autograds_log_determinant,
                  test_numpy_and_torch_give_the_same_numbers, test_fitted_maps_survive_json):
        check(sqrt_map)


@pytest.fixture
def cumsum_block():
    """A block map defined outside the tree: y_i = Σ_{j≤i} x_j over every column of its type
    (det = 1), to show that blocks are not a special case of the shower shares."""

    class CumulativeSum(BlockMap):
        @classmethod
        def from_params(cls, params):
            return cls()

        def forward(self, x, e_inc=None):
            return namespace(x).cumsum(x, 1)

        def inverse(self, y, e_inc=None):
            xp = namespace(y)
            return xp.concatenate([y[:, :1], y[:, 1:] - y[:, :-1]], 1)

        def log_abs_det_jacobian(self, x, e_inc=None):
            return namespace(x).zeros_like(x[:, 0])

        @classmethod
        def example_events(cls, n, seed):
            x = np.random.default_rng(seed).normal(0.0, [1.0, 2.0, 3.0, 1.0], (n, 4))
            return EventSet(x, ["a", "b", "c", "d"], transforms=[{"type": "cumsum"}, {"type": "log", "offset": 20.0},
                                                                 {"type": "cumsum"}, {"type": "cumsum"}])

    register_map("cumsum")(CumulativeSum)
    yield "cumsum"
    del MAPS["cumsum"]


def test_a_block_map_is_one_class_too(cumsum_block):
    events, pre = fitted(cumsum_block)
    (block,) = pre.blocks
    assert block.columns == (0, 2, 3) and isinstance(block.map, MAPS["cumsum"])
    y = pre.forward(events.features) * [f.std for f in pre.features] + [f.mean for f in pre.features]
    x = events.features
    np.testing.assert_allclose(y[:, [0, 2, 3]], np.cumsum(x[:, [0, 2, 3]], 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y[:, 1], np.log(x[:, 1] + 20.0), rtol=1e-12)
    for check in (test_round_trip_physical_to_network_and_back, test_round_trip_network_to_physical_and_back,
                  test_log_jacobian_is_autograds_log_determinant, test_numpy_and_torch_give_the_same_numbers,
                  test_fitted_maps_survive_json):
        check(cumsum_block)
