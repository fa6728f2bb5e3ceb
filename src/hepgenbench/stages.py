"""The workflow's stages as plain functions: one per Snakemake rule.

Rules stay thin: each names its files and calls one function here through the CLI
(:mod:`hepgenbench.cli`). Everything here is importable and testable without Snakemake.
Every stage has the same signature, ``stage(inputs, outputs, params, threads)``: inputs
and outputs map the rule's names to paths (a list where a name holds several), and
``params`` is the stage's typed record (:mod:`hepgenbench.records`), which the rule builds
from the validated config.
"""

from __future__ import annotations

import datetime as _dt
import platform
import resource
import socket
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from hepgenbench import kinds
from hepgenbench.errors import InputError
from hepgenbench.io import (
    EventSet,
    event_writer,
    read_events,
    read_json,
    write_events,
    write_json,
)
from hepgenbench.logging_utils import log
from hepgenbench.ordering import META_KEY as ORDER_KEY
from hepgenbench.ordering import object_orders, ordered_log_prob, put_in_order
from hepgenbench.preprocess import Preprocessor
from hepgenbench.records import (
    EXTERNAL,
    BudgetParams,
    EvaluateParams,
    ExternalParams,
    IngestParams,
    MetricsRecord,
    NoParams,
    NullParams,
    PlotsParams,
    PreprocessParams,
    Provenance,
    ReportParams,
    SampleCost,
    SampleParams,
    SourceParams,
    SplitParams,
    TrainingSummary,
    TrainParams,
)
from hepgenbench.seeding import derive_seed
from hepgenbench.split import read_split, split_indices, write_split

#: A stage's named input or output files: a path, or a list where a name holds several.
Paths = Mapping[str, str | list[str]]

# --------------------------------------------------------------------------- data
def source(inputs: Paths, outputs: Paths, params: SourceParams, threads: int) -> None:
    """Generate one seeded chunk of an embedded dataset (its kind's generator)."""
    output = outputs["data"]
    log(f"source '{params.source}': {params.n_events} events, seed {params.seed} -> {output}")
    stats = kinds.source(params.source).generate(output, params.block(), log)
    log(f"done: {stats}")


def merge(inputs: Paths, outputs: Paths, params: NoParams, threads: int) -> None:
    """Concatenate the seeded chunks of a chunked source into one ROOT file."""
    from hepgenbench.data.pythia import merge_root

    chunks, output = _as_list(inputs["chunks"]), outputs["data"]

    log(f"merging {len(chunks)} chunk(s) -> {output}")
    merge_root(chunks, output)


def read_dataset(files: list[str], params: IngestParams) -> EventSet:
    """Read a dataset's source files (embedded or the user's) into an :class:`EventSet`."""
    return kinds.source(params.source).read(files, params.block())


def ingest(inputs: Paths, outputs: Paths, params: IngestParams, threads: int) -> None:
    """Read the source files, build the flat feature table, write ``events.h5``.

    Sources that stream (ROOT) go chunk by chunk into the output, so memory holds one
    chunk however large the files are; the other formats are read whole. Repeated events
    (identical rows, or entries sharing an ``event_key``) are counted and reported: they
    would otherwise sit on both sides of the split.
    """
    from hepgenbench.metrics.duplicates import row_hashes

    files, output = _as_list(inputs["files"]), outputs["events"]
    t0 = time.perf_counter()
    src = kinds.source(params.source)
    provenance = {"dataset": params.name, "source": params.source, "files": [str(f) for f in files]}
    hashes: list[np.ndarray] = []
    if src.streams:
        with event_writer(output) as out:

            def sink(features, condition=None, event_key=None):
                hashes.append(row_hashes(features, condition))
                out.append(features, condition, event_key=event_key)

            header = src.read(files, params.block(), sink=sink)
            all_hashes = np.concatenate(hashes) if hashes else np.empty(0, dtype=np.uint64)
            header.meta.update(provenance, duplicates=_repeats(all_hashes, out.event_keys()))
            out.finish(header)
        n_events, n_features = out.n_events, header.n_features
    else:
        events = src.read(files, params.block())
        if len(events) == 0:
            raise InputError(f"no events left after reading {files}: check the selection and the files")
        events.meta.update(provenance, duplicates=_repeats(row_hashes(events.features, events.condition),
                                                           events.event_key))
        write_events(output, events)
        header, n_events, n_features = events, len(events), events.n_features
    dt = time.perf_counter() - t0
    log(f"ingested {n_events} events x {n_features} features in {dt:.1f} s ({n_events / dt:.0f} events/s)")
    repeats = header.meta["duplicates"]
    if repeats["n_duplicate_rows"] or repeats.get("n_repeated_entries"):
        log(f"warning: repeated events in {files}: {repeats['n_duplicate_rows']} row(s) identical to an earlier "
            f"one; {repeats.get('n_repeated_entries', 'no event_key, so unknown how many')} entries repeat an "
            "event seen before. Give the dataset an event_key (e.g. [run, event]) so that the split keeps each "
            "event on one side.")


def _repeats(hashes: np.ndarray, event_key: np.ndarray | None) -> dict[str, int]:
    """The repeated-event counts that ingest records in the events' metadata."""
    from hepgenbench.metrics.duplicates import entries_per_key, n_internal_duplicates

    out = {"n_entries": len(hashes), "n_duplicate_rows": n_internal_duplicates(hashes)}
    if event_key is not None:
        n_entries, n_events = entries_per_key(event_key)
        out.update(n_distinct_events=n_events, n_repeated_entries=n_entries - n_events)
    return out


def split(inputs: Paths, outputs: Paths, params: SplitParams, threads: int) -> None:
    events = read_events(inputs["events"])
    indices = split_indices(len(events), params.split, params.seed, events.event_key)
    write_split(outputs["split"], indices, params.seed)
    grouped = "" if events.event_key is None else f", whole events by {events.meta.get('event_key')}"
    log(f"split sizes{grouped}:", {k: len(v) for k, v in indices.items()})


def load_split_events(events_path: str, split_path: str) -> dict[str, EventSet]:
    events = read_events(events_path)
    return {name: events.subset(idx) for name, idx in read_split(split_path).items()}


def preprocess(inputs: Paths, outputs: Paths, params: PreprocessParams, threads: int) -> None:
    train = load_split_events(inputs["events"], inputs["split"])["train"]
    energy = getattr(params, "leave_out_energy", None)  # NoParams() too: a caller that leaves nothing out
    if energy is not None:  # nothing of the energy left out may reach the models
        from hepgenbench.leave_out import without_energy

        train = without_energy(train, energy, "config key training.leave_out_energy (train split)")
        log(f"leaving out the {energy:g} MeV showers: fitting on {len(train)}")
    pre = Preprocessor.fit(train)
    write_json(outputs["transform"], pre.to_dict())
    log(f"fitted {len(pre.features)} feature and {len(pre.conditions)} condition transform(s) on {len(train)} events")


# --------------------------------------------------------------------------- models
def density_in_network_space(kind: str, pre: Preprocessor, feature_names: list[str] | None = None):
    """The true log-density pulled back to network space: log p_u(u) = log p_x(x) − log|du/dx|."""
    names = list(feature_names) if feature_names is not None else [f.name for f in pre.features]
    density = kinds.get(kind).density(names)
    if density is None:
        known = [k for k, v in kinds.KINDS.items() if type(v).density is not kinds.DatasetKind.density]
        raise InputError(f"density-trained models need a dataset with a known density (kinds {known}), "
                         f"not '{kind}' with features {names}")

    def log_density(u):
        x = pre.inverse(u)
        return density.log_prob_torch(x) - pre.log_abs_det_jacobian(x)

    return log_density


def train(inputs: Paths, outputs: Paths, params: TrainParams, threads: int) -> None:
    """Train one model (one dataset × family × replica) and save weights, config and log."""
    import torch

    import hepgenbench.models  # noqa: F401  (fills the registry)
    from hepgenbench import train as trainer
    from hepgenbench.models.base import resolve

    sets = load_split_events(inputs["events"], inputs["split"])
    pre = Preprocessor.from_dict(read_json(inputs["transform"]))
    seed = params.seed
    # The rule's threads win over the config's: `snakemake --set-threads` changes them.
    settings = replace(params.training, threads=threads)
    tr, va = sets["train"], sets["val"]
    if settings.leave_out_energy is not None:
        from hepgenbench.leave_out import without_energy

        where = "config key training.leave_out_energy"
        tr, va = without_energy(tr, settings.leave_out_energy, f"{where} (train split)"), \
            without_energy(va, settings.leave_out_energy, f"{where} (validation split)")
        log(f"leaving out the {settings.leave_out_energy:g} MeV showers: {len(tr)} train, {len(va)} validation left")
    # The initial weights are drawn at build time: seed first, or two runs start apart.
    torch.manual_seed(seed)
    hparams = dict(params.hparams)
    family = resolve(params.family)
    if "unit_box" in family.defaults and "unit_box" not in hparams:
        hparams["unit_box"] = pre.unit_box()
    model = family(tr.n_features, tr.n_conditions, **hparams)
    log(f"{params.family} on {tr.meta.get('dataset', '?')}: {model.n_parameters()} parameters, seed {seed}")
    checkpoint = str(Path(outputs["model"]).with_name("checkpoint.pt"))
    # The weights at fractions of the budget (hepgenbench.budget); a caller may not want them.
    budget_path = outputs.get("budget_checkpoints")
    if model.trains_on_density:
        training_log = trainer.fit_density(
            model, density_in_network_space(tr.kind, pre, tr.feature_names), settings,
            checkpoint_path=checkpoint, csv_path=outputs["log_csv"], log=log, budget_path=budget_path,
        )
    else:
        def to_net(events: EventSet, *draw: object) -> np.ndarray:
            if model.models_cells:  # exact zeros: nothing to dequantize
                return pre.forward_cells(events.features, events.condition)
            cells = pre.dequantize(events.features, np.random.default_rng(derive_seed(seed, "dequantize", *draw)))
            return pre.forward(cells, events.condition)

        # Validation keeps one draw, so that its loss moves only when the model does.
        redraw = (lambda epoch: to_net(tr, "train", epoch)) if pre.dequantizes and not model.models_cells else None
        training_log = trainer.fit(
            model, to_net(tr, "train"), to_net(va, "val"),
            pre.forward_condition(tr.condition), pre.forward_condition(va.condition), settings,
            checkpoint_path=checkpoint, csv_path=outputs["log_csv"], log=log, redraw=redraw,
            budget_path=budget_path,
        )
    provenance = Provenance(
        hostname=socket.gethostname(),
        machine=platform.processor() or platform.machine(),
        device=training_log.device,
        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        trained_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        replica=params.replica,
        seed=seed,
        peak_memory_mb=_peak_rss_mb(),
    )
    trainer.save_model(outputs["model"], model, training_log, settings, provenance)
    Path(checkpoint).unlink(missing_ok=True)
    status = f"DIVERGED ({training_log.divergence_reason})" if training_log.diverged else training_log.stopped_because
    log(f"trained in {training_log.wall_time_s:.1f} s, best epoch {training_log.best_epoch}, stopped: {status}")


def sample(inputs: Paths, outputs: Paths, params: SampleParams, threads: int) -> None:
    """Sample as many events as truth-holdout A holds, in physical units, with the same conditions."""
    import torch

    from hepgenbench.cost import generation_cost
    from hepgenbench.train import load_model_and_record

    torch.set_num_threads(threads)
    # torch seeds its global generator at random in every process; the likelihood bounds
    # (IWAE samples, Hutchinson probes) draw from it, so seed it like everything else.
    torch.manual_seed(params.seed)
    t_load = time.perf_counter()
    model, trained = load_model_and_record(inputs["model"])
    load_time_s = time.perf_counter() - t_load
    pre = Preprocessor.from_dict(read_json(inputs["transform"]))
    truth = load_split_events(inputs["events"], inputs["split"])["truth_a"]
    seed = params.seed
    batch = params.batch_size
    cond_net = pre.forward_condition(truth.condition)
    cond_t = None if cond_net is None else torch.as_tensor(cond_net, dtype=torch.float32)
    generated = generate_like(model, pre, truth, batch, torch.Generator().manual_seed(seed),
                              {"model": params.model, "trained": trained.summary(model.likelihood_is_bound).to_dict()})
    extra = {}
    if model.has_likelihood:
        n_nll = min(len(truth), params.nll_max_events)
        extra["truth_log_prob"] = _log_prob_physical(model, pre, truth.subset(np.arange(n_nll)), batch, seed)
        log(f"log-likelihood of {n_nll} truth events: mean {np.mean(extra['truth_log_prob']):.4f}")
    density = kinds.get(truth.kind).density(truth.feature_names)
    if density is not None and model.has_likelihood and not model.likelihood_is_bound:
        generated.meta["importance_weights"] = _importance_weights(model, pre, generated, batch, params, density)
        log("importance weights p/q of the generated events:", generated.meta["importance_weights"])
    cost = generation_cost(model, tuple(params.rate_batch_sizes), cond_pool=cond_t, seed=seed)
    cost["load_time_s"] = load_time_s
    log("generation cost (ms per event, warm-up s, FLOPs per event):", cost)
    generated.meta.update(sample_rate=cost.pop("sample_rate"), generation_cost=cost, peak_memory_mb=_peak_rss_mb())
    write_events(outputs["sample"], generated, extra)


def generate_like(model, pre: Preprocessor, truth: EventSet, batch: int, generator, meta: dict) -> EventSet:
    """As many events as ``truth`` holds, with its conditions, from ``model``, in physical
    units and in truth's object order (Muon1 is by definition the harder muon)."""
    import torch

    cond_net = pre.forward_condition(truth.condition)
    cond_t = None if cond_net is None else torch.as_tensor(cond_net, dtype=torch.float32)
    t0 = time.perf_counter()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(truth), batch):
            stop = min(start + batch, len(truth))
            c = None if cond_t is None else cond_t[start:stop]
            chunks.append(model.sample(stop - start, c, generator=generator).double().cpu().numpy())
    u = np.concatenate(chunks)
    dt = time.perf_counter() - t0
    log(f"sampled {len(u)} events in {dt:.2f} s ({len(u) / max(dt, 1e-9):.0f} events/s)")
    orders = object_orders(truth.meta)
    physical = pre.inverse_cells(u, truth.condition) if model.models_cells else pre.inverse(u, truth.condition)
    x = put_in_order(physical, truth.feature_names, orders)
    return EventSet(
        features=x, feature_names=truth.feature_names, kind=truth.kind, transforms=truth.transforms,
        condition=truth.condition, condition_names=truth.condition_names, units=truth.units,
        meta={"model": None, "family": model.family, ORDER_KEY: [o.to_dict() for o in orders]} | meta,
    )


def _importance_weights(model, pre: Preprocessor, generated: EventSet, batch: int, params: SampleParams,
                        density) -> dict:
    """Unweighting efficiency and integration error of the model as a sampler: weights
    w = p/q on its own samples, with p the kind's true density (arXiv:2212.06172)."""
    from hepgenbench.metrics.unweighting import unweighting_efficiency

    sub = generated.subset(np.arange(min(len(generated), params.nll_max_events)))
    return unweighting_efficiency(density.log_prob(sub.features),
                                  _log_prob_physical(model, pre, sub, batch, params.seed))


def _log_prob_physical(model, pre: Preprocessor, events: EventSet, batch: int, seed: int) -> np.ndarray:
    """log q(x) in physical units: the model's density in network space plus the Jacobian,
    summed over the object orders that the sample stage folds into one (``ordering``).

    Zero-suppressed cells are dequantized first, as in training (``Preprocessor.dequantize``):
    the likelihood of a shower is then its dequantized density.
    """
    import torch

    c = pre.forward_condition(events.condition)
    c = None if c is None else torch.as_tensor(c, dtype=torch.float32)

    def unordered(x: np.ndarray) -> np.ndarray:
        u = torch.as_tensor(pre.forward(x, events.condition), dtype=torch.float32)
        out = []
        for start in range(0, len(u), batch):
            sl = slice(start, start + batch)
            lp = model.log_prob(u[sl], None if c is None else c[sl])
            out.append(lp.detach().double().cpu().numpy())
        return np.concatenate(out) + pre.log_abs_det_jacobian(x, events.condition)

    cells = pre.dequantize(events.features, np.random.default_rng(derive_seed(seed, "dequantize", "likelihood")))
    return ordered_log_prob(unordered, cells, events.feature_names, object_orders(events.meta))


def external(inputs: Paths, outputs: Paths, params: ExternalParams, threads: int) -> None:
    """Bring a user's samples (``models.<name>: {family: external, samples: FILE}``) into the
    DAG: read them with the dataset's own reader, check them against truth A as
    ``hepgenbench score`` does, bring them to truth A's size, and write them as a sample.
    """
    from hepgenbench.scoring import ReadingSpec, check_generated, subsample

    path = str(inputs["external"])
    truth = load_split_events(inputs["events"], inputs["split"])["truth_a"]
    reading = params.reading
    generated = ReadingSpec(reading.source, reading.block(), reading.name).read(path, f"models.{params.model}.samples")
    for warning in check_generated(generated, truth, path, params.allow_condition_mismatch):
        log(f"warning: {warning}")
    n_read = len(generated)
    generated = subsample(generated, len(truth), params.seed)
    if len(generated) < len(truth):
        log(f"warning: {path} holds {n_read} events, truth A {len(truth)}: its row is scored at fewer events "
            "than the truth floor")
    cost = params.cost.sample_cost() if params.cost else None
    generated.meta = {"model": params.model, "family": EXTERNAL, ORDER_KEY: truth.meta.get(ORDER_KEY, []),
                      "external": {"path": str(Path(path).resolve()), "n_read": n_read,
                                   "cost": None if cost is None else cost.to_dict()}}
    generated.transforms, generated.units = truth.transforms, truth.units
    write_events(outputs["sample"], generated)
    log(f"external samples of {params.model}: {len(generated)} of {n_read} events from {path}")


# --------------------------------------------------------------------------- evaluation
def evaluate(inputs: Paths, outputs: Paths, params: EvaluateParams, threads: int) -> None:
    """Score one model's sample (or, for ``model == 'truth'``, truth B) against truth A."""
    from hepgenbench.evaluate import evaluate_sample
    from hepgenbench.io import read_extra

    sets = load_split_events(inputs["events"], inputs["split"])
    truth, train_set = sets["truth_a"], sets["train"]
    options = params.evaluation
    is_truth = params.model == "truth"
    # Fields of the MetricsRecord, filled in below.
    record: dict[str, Any] = {
        "dataset": params.dataset,
        "model": params.model,  # the instance: nsf, or nsf_r1 for replica 1
        "name": params.name,  # the config name that replicas share
        "status": "ok",
        "status_detail": "",
    }
    log_q, bound = None, False
    density = kinds.get(truth.kind).density(truth.feature_names)
    if is_truth:
        generated = sets["truth_b"]
        record.update(family="truth", cost=None, training=None)
        if truth.log_density is not None:
            # The truth row's likelihood is the true density itself: its NLL is the entropy floor.
            log_q = truth.log_density
    else:
        generated = read_events(inputs["sample"])
        if generated.meta.get("family") == EXTERNAL:
            external_cost = generated.meta["external"].get("cost")
            record.update(family=EXTERNAL, training=None,
                          cost=None if external_cost is None else SampleCost.from_dict(external_cost, where=inputs["sample"]))
        else:
            log_q = read_extra(inputs["sample"], "truth_log_prob")
            if generated.meta.get("trained") is None:
                raise InputError(f"{inputs['sample']}: no 'trained' record in its metadata; the sample stage writes "
                                 "it: re-run that stage")
            trained = TrainingSummary.from_dict(generated.meta["trained"], where=f"{inputs['sample']}: 'trained'")
            bound = trained.likelihood_is_bound
            record["family"] = generated.meta["family"]
            if trained.diverged:
                record.update(status="diverged", status_detail=trained.divergence_reason)
            record["cost"] = SampleCost(
                **{**trained.cost.to_dict(),
                   "peak_memory_mb": max(trained.cost.peak_memory_mb, generated.meta.get("peak_memory_mb", 0.0))},
                sample_rate=generated.meta.get("sample_rate", {}),
                **generated.meta.get("generation_cost", {}),
            )
            record["training"] = trained.training
    record["n_truth"], record["n_generated"] = len(truth), len(generated)
    from threadpoolctl import threadpool_limits

    if options.c2st_classifier == "cc22":  # the challenge's network trains in torch: the rule's threads
        import torch

        torch.set_num_threads(threads)

    t0 = time.perf_counter()
    # scikit-learn's OpenMP pool ignores OMP_NUM_THREADS once loaded; beside another busy
    # job, an unlimited pool stalled a 0.3 s classifier test for 15 s.
    with threadpool_limits(threads):
        record["metrics"] = evaluate_sample(
            truth, generated, train_set, options, seed=params.seed, log_q_truth=log_q,
            likelihood_is_bound=bound,
        )
    if params.leave_out_energy is not None:
        from hepgenbench.evaluate import metric_seed
        from hepgenbench.leave_out import METRIC_KEY, held_out_energy_score

        held_out = held_out_energy_score(truth, generated, params.leave_out_energy, options,
                                         metric_seed(params.seed, METRIC_KEY))
        record["metrics"][METRIC_KEY] = held_out.to_dict()
        log(f"at the {params.leave_out_energy:g} MeV left out of training: C2ST AUC {held_out.value:.4f}")
    from hepgenbench.scoring import copy_check

    references = {"truth A": truth} if is_truth else {"truth A": truth, "truth B": sets["truth_b"], "train": train_set}
    record["metrics"]["duplicates"], flag = copy_check(generated, references, record["metrics"].get("c2st_auc"))
    if flag and record["status"] == "ok":
        record.update(status="flagged", status_detail=flag)
        log(f"warning: {flag}")
    weights = generated.meta.get("importance_weights")
    if is_truth and density is not None:
        # the truth row's proposal is the kind's baseline (flat phase space)
        weights = density.baseline_weights(len(generated), params.seed)
    if weights:
        record["metrics"]["unweighting_efficiency"] = {
            "value": weights["efficiency"],
            "error": None,
            "relative_integration_error": weights["relative_error"],
            "fraction_zero_weight": weights["fraction_zero_weight"],
            "n": weights["n"],
            "proposal": "flat phase space (baseline)" if is_truth else "model",
        }
    log(f"evaluated {params.model} in {time.perf_counter() - t0:.1f} s")
    MetricsRecord(**record).write(outputs["metrics"])


def null(inputs: Paths, outputs: Paths, params: NullParams, threads: int) -> None:
    """Draw one dataset's truth null and N_eq curve (:mod:`hepgenbench.null`)."""
    from threadpoolctl import threadpool_limits

    from hepgenbench.null import truth_null

    sets = load_split_events(inputs["events"], inputs["split"])
    t0 = time.perf_counter()
    with threadpool_limits(threads):  # as in evaluate: an unlimited OpenMP pool stalls beside busy jobs
        record = truth_null(sets["truth_a"], sets["truth_b"], sets["train"], params.evaluation, params.confidence,
                            params.seed, dataset=params.dataset, log=log)  # fmt: skip
    log(f"truth null of {params.dataset}: {record.n_replicas} replica(s) at N = {record.n_truth}, "
        f"N_eq curve at {record.curve_sizes}, in {time.perf_counter() - t0:.1f} s")
    record.write(outputs["null"])


def budget(inputs: Paths, outputs: Paths, params: BudgetParams, threads: int) -> None:
    """Score the weights one model kept at fractions of its budget (:mod:`hepgenbench.budget`)."""
    import torch

    from hepgenbench.budget import score_checkpoints
    from hepgenbench.train import load_budget_checkpoints, read_model_record

    torch.set_num_threads(threads)
    torch.manual_seed(params.seed)
    checkpoints = load_budget_checkpoints(inputs["model"], inputs["checkpoints"])
    trained = read_model_record(inputs["model"])
    pre = Preprocessor.from_dict(read_json(inputs["transform"]))
    sets = load_split_events(inputs["events"], inputs["split"])
    n = min(params.n_events, len(sets["truth_a"]), len(sets["truth_b"]))
    truth_a, truth_b = sets["truth_a"].subset(np.arange(n)), sets["truth_b"].subset(np.arange(n))

    def drawer(model):
        # every checkpoint draws with the same generator seed: common random numbers
        return lambda like: generate_like(model, pre, like, params.batch_size,
                                          torch.Generator().manual_seed(params.seed), {"model": params.model})

    settings = trained.settings
    if settings is None or not checkpoints:
        raise InputError(f"{inputs['model']}: no training settings or budget checkpoints; re-run the train stage")
    identity = {"dataset": params.dataset, "model": params.model, "name": params.name,
                "family": checkpoints[0][1].family, "axis": settings.budget_axis, "total": settings.budget_total,
                "stopped_because": trained.training_log.stopped_because if trained.training_log else ""}
    t0 = time.perf_counter()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):  # as in evaluate
        curve = score_checkpoints([(point, drawer(model)) for point, model in checkpoints], truth_a, truth_b,
                                  params.classifier, params.folds, params.seed, identity)
    curve.write(outputs["curve"])
    log(f"scored {len(checkpoints)} budget checkpoint(s) of {params.model} on {n} events in "
        f"{time.perf_counter() - t0:.1f} s: AUC " + ", ".join(f"{p.auc:.4f} at {p.fraction:g}" for p in curve.points)
        + f"; truth {curve.truth_auc:.4f}")


def budget_plots(inputs: Paths, outputs: Paths, params: PlotsParams, threads: int) -> None:
    """The quality-against-compute figure of one dataset, with its manifest for the report."""
    from hepgenbench.plots import write_plot_manifest
    from hepgenbench.plotting.budget import budget_figure
    from hepgenbench.records import BudgetCurve

    curves = _by_model([(p, BudgetCurve.read(p)) for p in _as_list(inputs["curves"])], lambda c: c.model,
                       list(params.models), "curves", "'model'")  # fmt: skip
    outdir = Path(outputs["plots"])
    outdir.mkdir(parents=True, exist_ok=True)
    record = budget_figure([curves[m] for m in params.models], outdir, params.dataset)
    write_plot_manifest(str(outdir / "manifest.json"), [record], params.dataset)


def plots(inputs: Paths, outputs: Paths, params: PlotsParams, threads: int) -> None:
    """Draw a dataset's figures. Samples, metrics and training logs are matched to models by
    the name each file records (a sample's ``meta["model"]``, a metrics record's ``model``,
    a training log's model directory), never by their order on the command line."""
    from hepgenbench.plots import make_dataset_plots, write_plot_manifest

    outdir = outputs["plots"]
    truth = load_split_events(inputs["events"], inputs["split"])["truth_a"]
    models = list(params.models)
    samples = _by_model([(p, read_events(p)) for p in _as_list(inputs["samples"])], lambda ev: ev.meta.get("model"),
                        models, "samples", "meta['model']")  # fmt: skip
    metrics = _by_model([(p, MetricsRecord.read(p).to_dict()) for p in _as_list(inputs["metrics"])],
                        lambda m: m.get("model"), [*models, "truth"], "metrics", "'model'")  # fmt: skip
    trained = [m for m in models if m not in params.external]
    csvs = _by_model([(p, p) for p in _as_list(inputs.get("training_csvs", []))], lambda p: Path(p).parent.name,
                     trained, "training_csvs", "the model directory")  # fmt: skip
    # The config's order fixes each model's colour and panel.
    samples, csvs = {m: samples[m] for m in models}, {m: csvs[m] for m in trained}
    records = make_dataset_plots(params.dataset, truth, samples, metrics, csvs, outdir)
    write_plot_manifest(str(Path(outdir) / "manifest.json"), records, params.dataset)
    log(f"{len(records)} plot(s) for {params.dataset} in {outdir}")


def _by_model(loaded: list[tuple[str, Any]], name_of, expected: list[str], what: str, where: str) -> dict[str, Any]:
    """``loaded`` (path, content) pairs keyed by the model name each records, checked against ``expected``."""
    out: dict[str, Any] = {}
    for path, content in loaded:
        name = name_of(content)
        if name not in expected:
            raise InputError(f"{path}: {what} input names model {name!r} in {where}; expected one of {expected}")
        if name in out:
            raise InputError(f"{path}: a second {what} input for model {name!r}")
        out[name] = content
    missing = [m for m in expected if m not in out]
    if missing:
        raise InputError(f"{what} inputs lack model(s) {missing}; got {sorted(out)}")
    return out


def report(inputs: Paths, outputs: Paths, params: ReportParams, threads: int) -> None:
    from hepgenbench.report import build_report

    outdir = str(Path(outputs["html"]).parent)
    # The plots rule's output is a directory that holds its manifest.
    manifests = [str(Path(p) / "manifest.json") if Path(p).is_dir() else p for p in _as_list(inputs["manifests"])]
    build_report(_as_list(inputs["metrics"]), manifests, params.config, outdir, title=params.title,
                 null_files=_as_list(inputs.get("nulls", [])),
                 budget_files=_as_list(inputs.get("budget", [])))  # fmt: skip
    log(f"report written: {Path(outputs['html']).resolve()}")


def _as_list(value: list[str] | str) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
