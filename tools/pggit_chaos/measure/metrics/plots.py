"""The Metrics page's plots (matplotlib, Agg backend), written to ``docs/_static/metrics``."""

from __future__ import annotations

import statistics

from pggit_chaos.measure.metrics import history_cost
from pggit_chaos.measure.metrics.measured import Measured, describe_exponent, describe_total, passing_run_seconds
from pggit_chaos.measure.mutants import CATEGORIES as MUTANT_CATEGORIES
from pggit_chaos.paths import REPO

PLOT_DIR = REPO / "docs" / "_static" / "metrics"


def _pyplot():
    """pyplot on the file-only Agg backend, in the page's style."""
    import matplotlib  # only the docs extra installs it; the rest of the package works without

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _save(fig, name: str) -> str:
    """Write ``fig`` to PLOT_DIR/name, close it, and return its path as the page links it."""
    PLOT_DIR.mkdir(parents=True, exist_ok=True)
    # No "Software" stamp: the PNG's bytes then change only when the plot does, not with matplotlib's version.
    fig.savefig(PLOT_DIR / name, dpi=110, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return f"_static/metrics/{name}"


def plot_kills_by_category(smoke: dict, full: dict) -> str:
    """Per mutant category: the catalog's mutants, and those each tier killed."""
    plt = _pyplot()
    cats = [c for c in MUTANT_CATEGORIES if any(m["category"] == c for m in full["mutants"])]
    total = [sum(1 for m in full["mutants"] if m["category"] == c) for c in cats]
    killed = {
        tier: [sum(1 for m in data["mutants"] if m["category"] == c and m["status"] == "killed") for c in cats]
        for tier, data in (("smoke", smoke), ("full", full))
    }
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(cats) + 1.2))
    ys = range(len(cats))
    ax.barh([y for y in ys], total, height=0.8, color="#e8e8e8", label="mutants in the catalog")
    ax.barh([y + 0.2 for y in ys], killed["full"], height=0.35, color="#1f6fb2", label="killed by the full tier")
    ax.barh([y - 0.2 for y in ys], killed["smoke"], height=0.35, color="#7fb8e6", label="killed by the smoke tier")
    for y, n, k in zip(ys, total, killed["full"]):
        ax.text(n + 0.05, y, f"{k}/{n}", va="center", fontsize=9)
    ax.set_yticks(list(ys), cats)
    ax.invert_yaxis()
    ax.set_xlabel("mutants")
    ax.set_xlim(0, max(total) + 0.8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5 / (0.42 * len(cats) + 1.2) - 0.12), ncol=3, frameon=False)
    ax.set_title("Mutants killed per category")
    return _save(fig, "killed-by-category.png")


def plot_tier_times(smoke: dict, full: dict, stability: dict | None) -> str:
    """One run of each tier (one process, and with pytest-xdist), and the whole catalog's wall time."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    labels, values, errors = [], [], []
    for tier, data in (("smoke", smoke), ("full", full)):
        labels.append(f"{tier}\n1 process")
        values.append(data["baseline"]["seconds"])
        errors.append((0, 0))
        runs = passing_run_seconds(stability, tier)
        if runs:
            median = statistics.median(runs)
            labels.append(f"{tier}\nxdist ({stability['workers']})")
            values.append(median)
            errors.append((median - min(runs), max(runs) - median))
    left.bar(labels, values, color=["#7fb8e6" if "smoke" in label else "#1f6fb2" for label in labels],
             yerr=list(zip(*errors)), capsize=4)
    left.set_ylabel("seconds")
    left.set_title("One run of the tier")
    right.bar(["smoke", "full"], [smoke["wall_seconds"] / 60, full["wall_seconds"] / 60], color=["#7fb8e6", "#1f6fb2"])
    right.set_ylabel("minutes")
    right.set_title(f"Whole catalog ({full['score']['total']} mutants, {full['jobs']} jobs)")
    fig.tight_layout()
    return _save(fig, "time-per-tier.png")


def plot_stability(stability: dict) -> str:
    """Each smoke run's wall time, coloured by its result."""
    plt = _pyplot()
    runs = [r for r in stability["runs"] if r["tier"] == "smoke"]
    fig, ax = plt.subplots(figsize=(8, 2.6))
    xs = range(1, len(runs) + 1)
    colours = ["#2e8b57" if r["exitstatus"] == 0 else "#c0392b" for r in runs]
    ax.bar(list(xs), [r["seconds"] for r in runs], color=colours)
    ax.set_xticks(list(xs))
    ax.set_xlabel("smoke run (green: passed, red: failed)")
    ax.set_ylabel("seconds")
    ax.set_title(f"{len(runs)} smoke runs, each with a random Hypothesis seed")
    return _save(fig, "stability-runs.png")


def plot_describe_cost(bench: dict) -> str:
    """What describing a wide table costs by width, log-log, pggit and each benchmarked mutant."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    widths = bench["widths"]
    for result, colour in zip(bench["results"], ["#1f6fb2", "#c0392b", "#e67e22", "#8e44ad"]):
        total = [describe_total(result, w) * 1000 for w in widths]
        ax.plot(widths, total, marker="o", color=colour,
                label=f"{result['label']} (k = {describe_exponent(result):.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.set_xlabel("columns, each with a default")
    ax.set_ylabel("ms: create + hash + alter")
    ax.set_title("What describing a wide table costs (log-log; k: growth exponent)")
    ax.legend(frameon=False)
    return _save(fig, "describe-cost.png")


def draw_plots(measured: Measured) -> dict[str, str]:
    """Every plot the results allow, as page-relative paths: kills and times always, the rest when measured."""
    plots = {
        "kills": plot_kills_by_category(measured.smoke, measured.full),
        "times": plot_tier_times(measured.smoke, measured.full, measured.stability),
    }
    if measured.stability:
        plots["stability"] = plot_stability(measured.stability)
    if measured.bench:
        plots["describe"] = plot_describe_cost(measured.bench)
    if measured.history:
        plots["history"] = history_cost.plot(measured.history, _pyplot, _save)
    return plots
