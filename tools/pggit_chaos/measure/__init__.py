"""The suite measured: mutant catalogs and their runner, repeated runs, benchmarks, the Metrics page."""
