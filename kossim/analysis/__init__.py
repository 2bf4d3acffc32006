"""From runs to verdicts: metrics of a run, statistics over seeds, expectations, load.

:mod:`~kossim.analysis.metrics` turns a run's task columns into tidy rows;
:mod:`~kossim.analysis.stats` gives intervals, paired tests and MSER-5;
:mod:`~kossim.analysis.expectations` is the ``expect:`` language and
:mod:`~kossim.analysis.check` evaluates it; :mod:`~kossim.analysis.overload`
computes offered load. Nothing here runs a simulation.
"""
