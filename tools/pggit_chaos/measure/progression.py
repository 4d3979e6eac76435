"""The test progression: which tests may still fail, as the one marker rule every CI job applies.

    pggit-chaos progression must-pass "not soak"          # a tier, less the tests that may fail
    pggit-chaos progression may-fail "chaos and not soak"  # only those (nothing, when none may fail)
    pggit-chaos progression weekly --category all         # the weekly tier's shards, as GitHub matrices

``.github/chaos-progression.json`` lists under ``can_fail`` the categories
still allowed to fail. A test may fail only when every category it carries
is on that list: a test marked ``load`` and ``resource`` must pass as long
as ``resource`` must. Every other test must pass, whatever job runs it. The
categories are the markers registered in ``pyproject.toml`` that are not
tiers or requirements (``NOT_CATEGORIES``). An empty list leaves every
expression as it was and gives no may-fail expression at all (a may-fail
job then has nothing to run), never ``not ()``.

``--output-name NAME`` prints ``NAME=VALUE`` for ``$GITHUB_OUTPUT``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pggit_chaos.pages import markexpr
from pggit_chaos.paths import REPO

COMMAND = "progression"
DESCRIPTION = __doc__.split("\n\n")[0]

PROGRESSION_FILE = REPO / ".github" / "chaos-progression.json"
PYPROJECT = REPO / "pyproject.toml"
# Registered markers that say how a test runs or what it needs, not what it attacks.
NOT_CATEGORIES = frozenset({"chaos", "slow", "destructive", "soak", "variant", "distinct_cases", "needs_control",
                            "needs_superuser"})

# The weekly tier. The whole suite (less the soak tests) runs on every version, split into shards of
# categories; a test belongs to the first shard naming one of its categories, a test of no category to
# "rest", so every test runs exactly once per version. The soak tests run on the versions the wheel ships.
PG_VERSIONS = ("14", "15", "16", "17", "18")
SOAK_PG_VERSIONS = ("16", "18")
SUITE_SHARDS = (
    ("property", ("property",)),
    ("concurrency", ("concurrent", "isolation", "load")),
    ("faults", ("transaction", "crash", "failover", "recovery", "resource", "settings")),
    ("data", ("corruption", "integrity", "migration", "partitions", "backup", "security")),
)
SUITE = "not soak"
SOAK = "soak"


@dataclass(frozen=True)
class Progression:
    """The categories there are, and those still allowed to fail; each method returns a ``-m`` expression."""

    categories: tuple[str, ...]
    can_fail: tuple[str, ...]

    @classmethod
    def load(cls, progression: Path = PROGRESSION_FILE, pyproject: Path = PYPROJECT) -> Progression:
        """Read the list and the registered markers; a listed name that is not a category is refused."""
        markers = tomllib.loads(pyproject.read_text())["tool"]["pytest"]["ini_options"]["markers"]
        categories = tuple(m.split(":")[0].strip() for m in markers if m.split(":")[0].strip() not in NOT_CATEGORIES)
        can_fail = tuple(json.loads(progression.read_text())["can_fail"])
        unknown = sorted(set(can_fail) - set(categories))
        if unknown:
            raise ValueError(f"{progression}: can_fail names no category: {', '.join(unknown)} "
                             f"(categories: {', '.join(categories)})")
        return cls(categories, can_fail)

    def may_fail_rule(self) -> str | None:
        """The tests whose every category may fail, or None when no category may."""
        if not self.can_fail:
            return None
        listed = " or ".join(self.can_fail)
        others = [c for c in self.categories if c not in self.can_fail]
        return f"({listed}) and not ({' or '.join(others)})" if others else f"({listed})"

    def must_pass(self, base: str = "") -> str:
        """``base`` less the tests that may fail: what a blocking job runs."""
        rule = self.may_fail_rule()
        if rule is None:
            return base
        return f"({base}) and not ({rule})" if base.strip() else f"not ({rule})"

    def may_fail(self, base: str = "") -> str | None:
        """Only the tests of ``base`` that may fail (None: there are none to run)."""
        rule = self.may_fail_rule()
        if rule is None:
            return None
        return f"({base}) and ({rule})" if base.strip() else rule

    def test_may_fail(self, marks: set[str] | frozenset[str]) -> bool:
        """Does the rule let a test carrying these marks fail? (The summary of a run asks this per test.)"""
        rule = self.may_fail_rule()
        return rule is not None and _parsed(rule).matches(marks)

    def weekly(self, category: str = "all") -> dict[str, list[dict[str, str]]]:
        """The weekly tier's matrices: ``suite`` (shard x version) and ``soak``; one category narrows both."""
        if category != "all" and category not in self.categories:
            raise ValueError(f"no category {category!r}; choose all or one of: {', '.join(self.categories)}")
        if category == "all":
            shards, taken = [], []
            for name, group in SUITE_SHARDS:
                mine = [c for c in group if c in self.categories]
                expr = f"{SUITE} and ({' or '.join(mine)})"
                shards.append((name, expr + (f" and not ({' or '.join(taken)})" if taken else "")))
                taken += mine
            shards.append(("rest", f"{SUITE} and not ({' or '.join(taken)})"))
            soaks = [("soak", SOAK)]
        else:
            shards = [(category, f"{SUITE} and {category}")]
            soaks = [(f"soak-{category}", f"{SOAK} and {category}")] if category in SOAK_CATEGORIES else []
        return {
            "suite": [{"shard": n, "pg": v, "markers": e} for n, e in shards for v in PG_VERSIONS],
            "soak": [{"shard": n, "pg": v, "markers": e} for n, e in soaks for v in SOAK_PG_VERSIONS],
        }


@functools.cache
def _parsed(expression: str) -> markexpr.MarkerExpression:
    return markexpr.parse(expression)


# The categories the soak tests carry: a manual weekly run of one of them runs its soak tests too.
SOAK_CATEGORIES = frozenset({
    "concurrent", "isolation", "load", "resource", "crash", "recovery", "settings", "migration", "property",
})


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The command's arguments: which expression, of which tier."""
    parser.add_argument("rule", choices=("must-pass", "may-fail", "weekly"),
                        help="must-pass or may-fail narrows BASE; weekly prints the weekly tier's matrices.")
    parser.add_argument("base", nargs="?", default="",
                        help="the tier's own -m expression, e.g. 'not soak' (default: every test).")
    parser.add_argument("--category", default="all", metavar="NAME",
                        help="with weekly: run only this category's tests and soak tests (default %(default)s).")
    parser.add_argument("--output-name", default=None, metavar="NAME",
                        help="print NAME=VALUE lines for $GITHUB_OUTPUT instead of the bare value.")
    parser.add_argument("--progression", type=Path, default=PROGRESSION_FILE, metavar="FILE",
                        help="the progression file to read (default: .github/chaos-progression.json).")
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the expression (or the matrices); 2 when the file names no category or BASE does not parse."""
    try:
        progression = Progression.load(args.progression)
        if args.base:
            markexpr.parse(args.base)
        if args.rule == "weekly":
            matrices = progression.weekly(args.category)
            for key, entries in matrices.items():
                value = json.dumps(entries, separators=(",", ":"))
                print(f"{args.output_name}-{key}={value}" if args.output_name else f"{key}: {value}")
            return 0
        expr = progression.must_pass(args.base) if args.rule == "must-pass" else progression.may_fail(args.base)
    except (ValueError, OSError) as error:
        print(f"pggit-chaos progression: {error}", file=sys.stderr)
        return 2
    markexpr.parse(expr or "")
    if args.output_name:
        print(f"{args.output_name}={expr or ''}")
    elif expr is not None:
        print(expr)
    return 0
