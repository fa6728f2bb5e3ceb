"""The metric suite: pure functions ``metric(truth, generated, **opts) -> MetricResult``.

:data:`HEADLINE` is the one list of the metrics that the report's summary table shows, in
order, with how to read each: ``"lower"`` means smaller is better; ``"half"`` means the
ideal is 0.5 (a classifier AUC) and the distance |value − 0.5| ranks the models; ``"one"``
means the ideal is 1 (a ratio to truth's own value); ``"higher"`` means larger is better.
For the unweighting efficiency, the ``truth`` row holds flat phase space's value: the
baseline a trained sampler must beat.
"""

from hepgenbench.metrics.base import MetricResult

#: (key in metrics JSON, column label, how to rank)
HEADLINE: list[tuple[str, str, str]] = [
    ("c2st_auc", "C2ST AUC", "half"),
    ("w1_mean", "W1/σ (mean)", "lower"),
    ("w1_observables_mean", "W1/σ derived (mean)", "lower"),
    ("jsd_mean", "JSD (mean)", "lower"),
    ("kl_mean", "KL hist (mean)", "lower"),
    ("separation_power_mean", "Sep. power (mean)", "lower"),
    ("emd", "EMD (exact)", "lower"),
    ("swd", "Sliced W", "lower"),
    ("fpd", "FPD", "lower"),
    ("kpd", "KPD", "lower"),
    ("nll_per_dim", "NLL/dim", "lower"),
    ("kl_exact", "KL(truth‖model)", "lower"),
    ("unweighting_efficiency", "Unweighting eff.", "higher"),
    ("unphysical_fraction", "Unphysical", "lower"),
    ("memorisation_ratio", "NN-dist ratio", "one"),
]

__all__ = ["HEADLINE", "MetricResult"]
