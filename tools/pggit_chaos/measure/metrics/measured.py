"""The measured results as the Metrics page reads them, and the numbers derived from them in more than one place."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from pggit_chaos.measure.growth import growth_exponent
from pggit_chaos.measure.mutants import MUTANTS, by_name


@dataclass
class Measured:
    """Both mutation runs and the failure modes; the stability runs, the describe benchmark and the hollow run when measured."""

    smoke: dict
    full: dict
    stability: dict | None
    modes: dict
    bench: dict | None = None
    hollow: dict | None = None
    history: dict | None = None  # the history benchmark

    @cached_property
    def smoke_by(self) -> dict[str, dict]:
        """The smoke run's mutants by name."""
        return {m["name"]: m for m in self.smoke["mutants"]}

    @cached_property
    def full_by(self) -> dict[str, dict]:
        """The full run's mutants by name."""
        return {m["name"]: m for m in self.full["mutants"]}

    @cached_property
    def names(self) -> list[str]:
        """Every mutant measured: the full run's order, then any only the smoke run has."""
        return list(self.full_by) + [n for n in self.smoke_by if n not in self.full_by]

    @cached_property
    def catalog(self) -> dict[str, dict]:
        """Each mutant's record, with the catalog's current description."""
        recorded = {m["name"]: m for m in self.full["mutants"] + self.smoke["mutants"]}
        # The catalog's current wording (the recorded names and categories are checked against it by a test).
        current = by_name()
        return {n: {**m, "description": current[n].description} if n in current else m for n, m in recorded.items()}

    @cached_property
    def unmeasured(self) -> list[tuple[str, str]]:
        """Mutants of the current catalog that no recorded run has met yet, as (name, category)."""
        return [(m.name, m.category) for m in MUTANTS if m.name not in self.smoke_by or m.name not in self.full_by]

    @cached_property
    def benched(self) -> dict[str, dict]:
        """The describe benchmark's results for mutants, by mutant name."""
        return {r["mutant"]: r for r in (self.bench or {}).get("results", []) if r.get("mutant")}

    @cached_property
    def history_benched(self) -> dict[str, dict]:
        """The history benchmark's results for mutants, by mutant name."""
        return {r["mutant"]: r for r in (self.history or {}).get("results", []) if r.get("mutant")}

    @cached_property
    def dates(self) -> list[str]:
        """The days (UTC) the results were measured on."""
        return measured_dates(self.smoke, self.full, self.stability)


def passing_run_seconds(stability: dict | None, tier: str) -> list[float]:
    """Wall times of the stability runs of ``tier`` that passed (pytest-xdist, as make runs it)."""
    return [r["seconds"] for r in (stability or {}).get("runs", []) if r["tier"] == tier and r["exitstatus"] == 0]


def run_days(runs: list[dict]) -> list[str]:
    """The days (UTC) ``runs`` started on, from each run's own record (runs recorded before the tool kept it have none)."""
    return sorted({r["started"][:10] for r in runs if r.get("started")})


def measured_dates(smoke: dict, full: dict, stability: dict | None) -> list[str]:
    """The days (UTC) the mutation runs and the stability runs started on."""
    return sorted({smoke["started"][:10], full["started"][:10], *run_days((stability or {}).get("runs", []))})


def describe_total(result: dict, width: int) -> float:
    """Seconds of create, hash and alter together at ``width`` columns."""
    return sum(result["seconds"][str(width)].values())


def describe_exponent(result: dict) -> float:
    """The growth exponent of the three steps' total time over the widths."""
    widths = sorted(int(w) for w in result["seconds"])
    return growth_exponent(widths, [describe_total(result, w) for w in widths])
