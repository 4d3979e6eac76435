"""The suite measured: the mutant catalog and its runner, repeated runs, benchmarks, the Metrics page.

Each tool is a command of ``pggit-chaos`` (``pggit_chaos.cli``): ``mutate``
(``runner``), ``stability``, ``bench-describe``, ``bench-cluster`` and
``metrics`` (the ``metrics`` package). The mutation runner and the
stability runs start the suite through ``suite_run``, whose child runs load
the ``recorder`` plugin; ``hypothesis_report`` reads Hypothesis's reports.
The bugs themselves are in ``mutants``; ``options`` holds the option types
the tools' parsers share.
"""
