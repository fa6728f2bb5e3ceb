"""hepgenbench: benchmark generative models for high-energy physics on equal terms.

The library behind the Snakemake workflow: data sources and readers, invertible
preprocessing, one registry of generator families with one training loop, a metric suite
with truth-vs-truth noise floors, plots and the report.
"""

__version__ = "0.1.0"


def score(*args, **kwargs):
    """Score generated samples against truth; the results table (:func:`hepgenbench.scoring.score`)."""
    from hepgenbench.scoring import score as _score

    return _score(*args, **kwargs)

