"""The Metrics page: ``docs/metrics.md``, the chaos guide's summary and the plots, made from the measured results.

    pggit-chaos metrics [--no-import] [--no-collect]

Inputs, all machine-readable:

- ``_build/metrics/mutation-smoke.json`` and ``mutation-full.json``
  (``pggit-chaos mutate``): mutation scores, the killing tests, the
  baseline runs' per-test durations and Hypothesis statistics, and the
  shrinking done where a property test killed a mutant;
- ``_build/metrics/stability.json`` (``pggit-chaos stability``): repeated
  smoke runs with random seeds, and the full tier's wall time;
- ``_build/metrics/bench-describe.json`` (``pggit-chaos bench-describe``):
  what describing a wide table costs, by width;
- ``_build/metrics/bench-ddl.json`` (``pggit-chaos bench-ddl``): what
  pggit's tracking adds to a DDL statement, in a new session and a warm one;
- ``_build/metrics/suite-timing.json`` and ``suite-cpu.json``
  (``pggit-chaos bench-suite`` and ``bench-cpu``, each started from the
  committed copy and keeping its other measurements): each tier's wall
  time by user, and where its CPU time goes;
- ``docs/_data/metrics/failure-modes.json``: every chaos test's categories
  (markers) and the faults its code uses, made by a collection-only pytest
  run with ``failure_modes`` as a plugin (static analysis of each test's
  source and of the helpers and fixtures of its module that it uses).

Complete results found under ``_build/metrics`` are first copied to
``docs/_data/metrics`` (committed, so the site builds without rerunning
anything); the page and the plots in ``docs/_static/metrics`` are then made
from ``docs/_data/metrics`` alone.

Modules: ``results`` (where results live, their import and loading),
``measured`` (the numbers derived from them), ``failure_modes`` (the
collection plugin), ``plots``, ``markdown`` (table and cell helpers),
``sections`` (one function per section of the page; ``history_cost``,
``ddl_cost``, ``suite_timing`` and ``suite_cpu`` have a module each) and ``page`` (the page,
the summary and the command).
"""
