"""How sure the report is: p-value calibration, P(best) against hand-computed values, N_eq.

The math of :mod:`hepgenbench.confidence` is checked against analytic values; the report's
tables are read from a page built on the real output of the stages (train, sample,
evaluate, null) on a small phase-space dataset.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import ReportPage
from scipy.stats import kstest, norm

from hepgenbench import stages
from hepgenbench.confidence import (
    bh_adjust,
    draw_scores,
    equivalent_sample_size,
    p_value,
    randomized_p_value,
    ranking_statistics,
)
from hepgenbench.errors import InputError
from hepgenbench.kinds import validate_dataset
from hepgenbench.metrics.wasserstein import w1_1d
from hepgenbench.null import split_pool
from hepgenbench.records import (
    ConfidenceOptions,
    EvaluateParams,
    IngestParams,
    MetricsRecord,
    NoParams,
    NullParams,
    NullRecord,
    SampleParams,
    SourceParams,
    SplitParams,
    TrainParams,
)
from hepgenbench.report import build_report, neq_table, pvalue_table, rank_score

# ---------------------------------------------------------------- calibration of the p-values
#: few null replicas on purpose: a p-value off by one rank is then off by 1/(K+1) = 0.2
K, N, SEEDS = 4, 60, 500


def _calibration(p_of, shift: float = 0.0) -> np.ndarray:
    """Per seed: a truth pool of 2N events from N(0, 1) (truth A = its first half), K re-split
    null replicas of the 1-D W1 (:func:`split_pool`, as the null stage draws them), and a
    generated sample of N events from N(shift, 1) scored against truth A; ``p_of(score,
    null, u)`` makes the p-value (u: the seed's uniform for randomized p-values)."""
    out = []
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        pool, generated, u = rng.standard_normal(2 * N), rng.standard_normal(N) + shift, rng.uniform()
        null = [w1_1d(pool[a], pool[b]) for a, b in (split_pool(2 * N, N, N, seed, k) for k in range(K))]
        out.append(p_of(w1_1d(pool[:N], generated), null, u))
    return np.asarray(out)


def _correct(score, null, u):
    return randomized_p_value(score, null, u)


def _forgets_the_observed_rank(score, null, u):  # (#{>} + u #{=}) / (K + 1): the "+1" of the row left out
    null = np.asarray(null)
    return (np.count_nonzero(null > score) + u * np.count_nonzero(null == score)) / (len(null) + 1)


def _divides_by_k(score, null, u):  # the same count over K instead of K + 1
    return randomized_p_value(score, null, u) * (len(null) + 1) / len(null)


def _wrong_tail(score, null, u):  # small p for a row that is *closer* than the null
    return randomized_p_value(-score, [-x for x in null], u)


def test_p_values_are_uniform_under_the_null_and_the_check_catches_off_by_one_ranks():
    uniform = _calibration(_correct)
    assert kstest(uniform, "uniform").pvalue > 0.01
    # the reported p-value is the randomized one at u = 1: the upper end of its grid cell
    rng = np.random.default_rng(0)
    for _ in range(50):
        null, score = rng.standard_normal(K), rng.standard_normal()
        assert p_value(score, null) == randomized_p_value(score, null, 1.0)
    # the same check fails p-values that are off by one rank
    for mutant in (_forgets_the_observed_rank, _divides_by_k):
        assert kstest(_calibration(mutant), "uniform").pvalue < 1e-4, mutant.__name__


def test_p_values_are_small_for_a_shifted_generator_and_the_wrong_tail_is_caught():
    # Under the null the wrong tail is uniform too; a shifted generator exposes it.
    shifted = _calibration(_correct, shift=0.8)
    # with K = 4 the randomized p of a row beyond every null replica is U(0, 0.2): median 0.1
    assert np.median(shifted) < 0.15 and kstest(shifted, "uniform", alternative="greater").pvalue < 1e-6
    wrong = _calibration(_wrong_tail, shift=0.8)
    assert np.median(wrong) > 0.5


def test_ties_count_against_the_row_and_bh_matches_its_definition():
    assert p_value(0.0, [0.0] * 9) == 1.0  # a fraction that is 0 for truth and the row: no evidence
    assert p_value(1.0, [0.0] * 9) == pytest.approx(0.1)
    p = np.array([0.01, 0.04, 0.03, 0.5])
    # min over j ≥ i of m p_(j) / j on the sorted p: 0.04, 0.04·4/3 → 0.0533 twice, 0.5
    assert bh_adjust(p) == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert np.isnan(bh_adjust([np.nan, 0.01])[0]) and bh_adjust([np.nan, 0.01])[1] == pytest.approx(0.01)
    with pytest.raises(InputError):
        p_value(0.1, [np.nan])


# ---------------------------------------------------------------- P(best)
def _statistics(values, errors, modes, draws=40_000, seed=1):
    scores = draw_scores([np.asarray(v, float) for v in values], [np.asarray(e, float) for e in errors],
                         lambda x, j: rank_score(x, modes[j]), draws, np.random.default_rng(seed))  # fmt: skip
    return ranking_statistics(scores)


def test_p_best_of_two_overlapping_families_matches_the_normal_integral():
    # One "lower" metric: A ~ N(0, 1), B ~ N(√2, 1); P(A < B) = Φ(√2 / √2) = Φ(1) = 0.8413.
    stats = _statistics([[[0.0]], [[math.sqrt(2)]]], [[[1.0]], [[1.0]]], ["lower"])
    assert stats.p_best[0] == pytest.approx(norm.cdf(1.0), abs=0.01)
    assert stats.p_best.sum() == pytest.approx(1.0)
    # Two metrics, independent: A wins a metric with p1 = Φ(1) and p2 = Φ(−0.5); a split is a
    # tie of mean ranks, shared: P(A best) = p1 p2 + (p1(1 − p2) + (1 − p1) p2) / 2 = (p1 + p2) / 2.
    # The second metric is an AUC ("half", scored |v − 0.5|): A at 0.6, B 0.5 σ√2 closer to 0.5,
    # σ = 0.01, so that the folding at 0.5 (9σ away) never happens.
    p1, p2 = norm.cdf(1.0), norm.cdf(-0.5)
    a = [[0.0, 0.6]]
    b = [[math.sqrt(2), 0.6 - 0.5 * 0.01 * math.sqrt(2)]]
    stats = _statistics([a, b], [[[1.0, 0.01]], [[1.0, 0.01]]], ["lower", "half"])
    assert stats.p_best_metric[0] == pytest.approx([p1, p2], abs=0.01)
    assert stats.p_best[0] == pytest.approx((p1 + p2) / 2, abs=0.01)


def test_training_replicas_enter_p_best_and_the_rank_interval():
    # A's two seeds sit at 0 and 2, B at 1, no statistical error: A is best in half the draws.
    stats = _statistics([[[0.0], [2.0]], [[1.0]]], [[[0.0], [0.0]], [[0.0]]], ["lower"], draws=20_000)
    assert stats.p_best[0] == pytest.approx(0.5, abs=0.02)
    assert (stats.rank_low[0], stats.rank_high[0]) == (1.0, 2.0)
    # without the spread there is no doubt
    sure = _statistics([[[0.0]], [[1.0]]], [[[0.0]], [[0.0]]], ["lower"], draws=100)
    assert sure.p_best.tolist() == [1.0, 0.0] and (sure.rank_low[0], sure.rank_high[0]) == (1.0, 1.0)


# ---------------------------------------------------------------- N_eq
def test_equivalent_sample_size_inverts_a_curve_linear_in_log_n_and_bounds_outside_it():
    sizes = [100, 200, 400, 800]
    curve = [0.5 - 0.1 * math.log(n) for n in sizes]  # exactly linear in log N
    for n_eq in (150.0, 333.0, 700.0):
        found = equivalent_sample_size(sizes, curve, 0.5 - 0.1 * math.log(n_eq))
        assert found.relation == "=" and found.n == pytest.approx(n_eq)
    worse = equivalent_sample_size(sizes, curve, 1.0)
    better = equivalent_sample_size(sizes, curve, -1.0)
    assert (worse.relation, worse.n, worse.text()) == ("<", 100, "< 100")
    assert (better.relation, better.n, better.text()) == ("≥", 800, "≥ 800")
    # a fluctuation up at a larger N does not make the curve non-monotone: the running minimum holds
    assert equivalent_sample_size([100, 200, 400], [0.3, 0.1, 0.2], 0.15).n < 200
    with pytest.raises(InputError):
        equivalent_sample_size([100], [0.3], 0.1)


# ---------------------------------------------------------------- the stages and the report
#: the suite's lightest settings (as tests/test_plots.py's) and a small null
LIGHT = {"n_bootstrap": 2, "n_bins": 10, "emd_subsample": 100, "emd_repeats": 1, "swd_projections": 10, "swd_seeds": 2,
         "c2st_folds": 2, "fpd_min_samples": 100, "fpd_max_samples": 300, "fpd_points": 3, "fpd_resamples": 2,
         "kpd_batch_size": 100, "kpd_batches": 2, "memorisation_max_events": 200, "memorisation_max_train": 400}  # fmt: skip
NULL = {"null_replicas": 19, "null_metrics": ["c2st_auc", "w1_mean", "swd", "fpd"], "neq_fractions": [0.125, 0.25, 0.5],
        "neq_replicas": 2, "level": 0.1}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """Source → ingest → split → preprocess → one RealNVP trained for one epoch (a bad
    model), sampled as models ``a`` and ``b`` → evaluate each and truth → the null stage."""
    base = tmp_path_factory.mktemp("confidence")
    config = {
        "seed": 5, "datasets": {"ps": validate_dataset("ps", {"source": "phasespace", "n_events": 3000})},
        "models": {"a": {"family": "realnvp"}, "b": {"family": "realnvp"}},
        "training": {"max_epochs": 1, "batch_size": 256}, "sampling": {"rate_batch_sizes": [1], "nll_max_events": 100},
        "evaluation": LIGHT, "confidence": NULL,
    }  # fmt: skip
    data = {"events": str(base / "events.h5"), "split": str(base / "split.h5"), "transform": str(base / "transform.json")}
    source = str(base / "ps.h5")
    stages.source({}, {"data": source}, SourceParams.from_config(config, "ps"), 1)
    stages.ingest({"files": [source]}, {"events": data["events"]}, IngestParams.from_config(config, "ps"), 1)
    stages.split({"events": data["events"]}, {"split": data["split"]}, SplitParams.from_config(config, "ps"), 1)
    stages.preprocess(data, {"transform": data["transform"]}, NoParams(), 1)
    model = base / "model.pt"
    stages.train(data, {"model": str(model), "log_csv": str(base / "training.csv")},
                 TrainParams.from_config(config, "ps", "a"), 1)  # fmt: skip
    metrics = []
    for name in ("a", "b", "truth"):
        inputs = dict(data)
        if name != "truth":
            inputs["sample"] = str(base / f"{name}.h5")
            stages.sample({**data, "model": str(model)}, {"sample": inputs["sample"]},
                          SampleParams.from_config(config, "ps", name), 1)  # fmt: skip
        metrics.append(str(base / f"{name}.json"))
        stages.evaluate(inputs, {"metrics": metrics[-1]}, EvaluateParams.from_config(config, "ps", name), 1)
    null = str(base / "null.json")
    stages.null(data, {"null": null}, NullParams.from_config(config, "ps"), 1)
    out = base / "report"
    build_report(metrics, [], config, str(out), provenance={"git_commit": "x", "packages": {}}, null_files=[null])
    page = ReportPage()
    page.feed((out / "index.html").read_text())
    return {"config": config, "metrics": metrics, "null": null, "page": page, "out": out}


def test_the_null_stage_repeats_the_rows_computation_on_resplits(run):
    null = NullRecord.read(run["null"])
    truth = MetricsRecord.read(run["metrics"][2])
    assert (null.n_truth, null.n_generated, null.n_replicas) == (truth.n_truth, truth.n_generated, 19)
    assert null.n_pool == 2 * truth.n_truth and set(null.replicas) == set(NULL["null_metrics"])
    assert all(len(v) == 19 and all(x is not None for x in v) for v in null.replicas.values())
    # the replicas are distinct splits, and none is truth A against truth B itself
    assert len({round(x, 12) for x in null.replicas["w1_mean"]}) == 19
    assert truth.metrics["w1_mean"]["value"] not in null.replicas["w1_mean"]
    n = truth.n_truth
    assert null.curve_sizes == [round(n / 8), round(n / 4), round(n / 2), n]
    assert null.curve["w1_mean"][-1] == null.replicas["w1_mean"]
    # W1 of truth against truth shrinks with N: the curve the N_eq reads is meaningful
    means = [np.mean(v) for v in null.curve["w1_mean"]]
    assert means[0] > means[-1]


def test_report_shows_corrected_p_values_and_the_verdict(run):
    table = run["page"].frame("pvalues-ps")
    null = json.loads(Path(run["null"]).read_text())
    assert list(table.index) == ["truth", "a", "b"]
    assert list(table.columns) == ["C2ST AUC", "W1/σ (mean)", "Sliced W", "FPD", "compatible with truth"]
    cells = {(c["row"]["data-model"], c["data-metric"]): c for row in run["page"].tables["pvalues-ps"][1:] for c in row
             if "data-metric" in c}  # fmt: skip
    modes = {"c2st_auc": "half", "w1_mean": "lower", "swd": "lower", "fpd": "lower"}
    for path, model in zip(run["metrics"], ("a", "b", "truth")):
        values = json.loads(Path(path).read_text())["metrics"]
        raw = []
        for key, mode in modes.items():
            # by hand: (1 + #{null score ≥ row score}) / (K + 1)
            score = rank_score(values[key]["value"], mode)
            expected = (1 + sum(rank_score(v, mode) >= score for v in null["replicas"][key])) / 20
            assert float(cells[(model, key)]["data-p"]) == pytest.approx(expected)
            raw.append(expected)
        adjusted = bh_adjust(raw)
        for (key, _), q in zip(modes.items(), adjusted):
            assert float(cells[(model, key)]["data-p-adjusted"]) == pytest.approx(q)
            assert float(cells[(model, key)]["text"]) == pytest.approx(q, abs=1e-3)
        assert table.at[model, "compatible with truth"] == ("yes" if (adjusted > 0.1).all() else "no")
    # one epoch of RealNVP is far from truth on the C2ST and the Wasserstein distances (FPD, from
    # 3 points × 2 resamples here, is too noisy to tell): the smallest p-value, and incompatible
    assert {float(cells[("a", k)]["data-p"]) for k in ("c2st_auc", "w1_mean", "swd")} == {0.05}
    assert table.at["a", "compatible with truth"] == "no"
    # truth B is one draw of the null: it passes
    assert table.at["truth", "compatible with truth"] == "yes"


def test_a_row_whose_null_would_need_more_truth_says_so(run):
    entries = [MetricsRecord.read(p).to_dict() for p in run["metrics"]]
    null = NullRecord.read(run["null"])
    entries[0]["n_generated"] = null.n_pool  # an external sample as large as the whole holdout
    entries[1]["n_generated"] = null.n_generated // 2
    table = pvalue_table(entries, "ps", null, 0.05).set_index(("model", ""))
    assert table.at["a", ("fpd", "note")] == f"null needs {null.n_truth + null.n_pool} truth events; the holdout has {null.n_pool}"
    assert table.at["b", ("fpd", "note")] == f"null drawn at {null.n_generated} events, this row has {null.n_generated // 2}"
    assert math.isnan(table.at["a", ("fpd", "p")]) and table.at["a", ("compatible", "")] is None


def test_report_shows_n_eq_with_bounds_and_p_best_with_rank_intervals(run):
    page, null = run["page"], NullRecord.read(run["null"])
    neq = page.frame("neq-ps")
    assert list(neq.index) == ["a", "b"] and list(neq.columns) == ["C2ST AUC", "W1/σ (mean)", "Sliced W", "FPD"]
    entries = [MetricsRecord.read(p).to_dict() for p in run["metrics"]]
    expected = neq_table(entries, "ps", null).set_index("model")
    for model in ("a", "b"):
        for key, label in (("c2st_auc", "C2ST AUC"), ("fpd", "FPD")):
            assert neq.at[model, label] == expected.at[model, key].text()
    # by hand for the bad model's W1: worse than truth against truth at the smallest size
    w1 = json.loads(Path(run["metrics"][0]).read_text())["metrics"]["w1_mean"]["value"]
    assert w1 > np.mean(null.curve["w1_mean"][0])
    assert neq.at["a", "W1/σ (mean)"] == f"< {null.curve_sizes[0]}"
    ranking = page.frame("ranking-ps")
    assert list(ranking.columns) == ["mean rank", "within noise floor", "P(best)", "rank 16–84 %"]
    p_best = [float(c["data-p-best"]) for row in page.tables["ranking-ps"][1:] for c in row if "data-p-best" in c]
    assert sum(p_best) == pytest.approx(1.0)
    # the ranking's leader by mean rank is the likelier best
    assert p_best[0] >= p_best[1]
    assert all(cell in ("1", "2", "1.5") or "–" in cell for cell in ranking["rank 16–84 %"])
    markdown = (run["out"] / "report.md").read_text()
    assert "### p-values against the truth null" in markdown and "### Equivalent truth sample size N_eq" in markdown


def test_a_row_beyond_a_too_small_null_is_unresolved_not_compatible(run):
    entries = [MetricsRecord.read(p).to_dict() for p in run["metrics"]]
    null = NullRecord.read(run["null"])
    # At 1 %, a's p-values of 1/(19 + 1) = 0.05 on three metrics do not reject, but only because
    # the null has 19 draws: the row is unresolved, not compatible. Truth, inside the null, stays compatible.
    table = pvalue_table(entries, "ps", null, 0.01).set_index(("model", ""))
    assert table.at["a", ("compatible", "")] is None
    assert table.at["a", ("verdict_note", "")] == "unresolved: beyond all 19 null draws on 3 metric(s); raise confidence.null_replicas"
    assert table.at["truth", ("compatible", "")] is True and table.at["truth", ("verdict_note", "")] == ""


def test_confidence_options_reject_bad_values():
    with pytest.raises(InputError, match="confidence.level"):
        ConfidenceOptions.from_config({"level": 1.5})
    with pytest.raises(InputError, match="confidence: unknown key|null_replica"):
        ConfidenceOptions.from_config({"null_replica": 3})
