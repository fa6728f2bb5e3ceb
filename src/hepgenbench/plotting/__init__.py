"""The figures that belong to one dataset kind, one module per kind's figures.

:mod:`hepgenbench.plots` draws what every dataset gets (histograms with ratios,
correlations, training curves, classifier weights, cost); a kind's
:meth:`~hepgenbench.kinds.DatasetKind.extra_plots` imports its module from here inside
the method, so that importing the kind registry (the Snakefile does) never loads
matplotlib. Each function takes a :class:`~hepgenbench.kinds.KindPlotInputs` and returns
:class:`~hepgenbench.records.PlotRecord` s.
"""
