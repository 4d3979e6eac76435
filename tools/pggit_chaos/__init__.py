"""pggit_chaos: chaos testing for pggit, a pytest plugin and the toolkit its tests are written with.

Rooms, one concept each: ``server`` (binaries, the throwaway cluster, an
existing server), ``plugin`` (pytest options and fixtures), the toolkit
(``client``, ``nemesis``, ``history``, ``checkers``, ``generators``,
``snapshot``, ``monitor``, ``interleavings``), ``pages`` (guides whose code
blocks are tests) and ``measure`` (mutants, stability, benchmarks, Metrics).
"""
