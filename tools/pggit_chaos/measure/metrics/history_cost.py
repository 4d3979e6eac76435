"""The Metrics page's section on what pggit costs as its history grows: the table and the log-log plot."""

from __future__ import annotations

from pggit_chaos.measure import mutants_scale
from pggit_chaos.measure.metrics.markdown import table

# The contract's bar: nothing grows faster than n log n, which fits to about 1.1 over 10^3..10^5.
EXPONENT_LIMIT = 1.2
PLOT_NAME = "history-cost.png"


def _size(n: int) -> str:
    """A size as a reader wants it: 10^5 rather than 100000 when it is a power of ten."""
    text = str(n)
    return f"10^{len(text) - 1}" if text.strip("0") == "1" and n >= 1000 else f"{n:,}"


def history_summary(history: dict) -> str:
    """verify_integrity() at the largest size measured, and its growth exponent (the summary's row)."""
    base = history["results"][0]
    largest = base["sizes"][-1]
    return (f"{base['seconds'][str(largest)]['verify_integrity']:.2f} s at {_size(largest)} commits, "
            f"growth exponent {base['growth_exponent']['verify_integrity']:.2f}")


def section(history: dict | None, plot: str | None) -> list[str]:
    """Median seconds per function and size, the growth exponents, and the mutants beside pggit."""
    lines = ["### Cost as pggit's history grows", ""]
    if not history:
        return lines + ["Not measured yet (`pggit-chaos bench-history`).", ""]
    base, sizes = history["results"][0], history["results"][0]["sizes"]
    shape = history["histories"][str(sizes[-1])]
    load = history.get("load_average_at_start")
    lines += [
        "pggit promises that no function's cost grows faster than n log n in the size of",
        "its history, and that `verify_integrity()` answers within seconds on 10^5 commits.",
        "`tools/pggit_chaos/measure/bench_history.py` bulk-loads a history of n commits",
        "(`history_build.py`: half on main, the rest over n/100 branches; n/10 tracked tables, n/100",
        "of them live; n history rows; n/100 migrations), checks it with `verify_integrity()`",
        "and `detect_drift()`, then calls every reader and writer of pggit: median of",
        f"{history['repeat']} rounds, on PostgreSQL {history['pg_version']}, {history['started'][:10]}, "
        f"{history['machine']['cores']} cores"
        + (f", load average {load[0]:.1f} at the start (other work on the machine makes every time longer)"
           if load else "") + ".",
        f"At {_size(sizes[-1])}: {shape['commits']:,} commits, {shape['branches']:,} branches, "
        f"{shape['tracked_tables']:,} tracked tables ({shape['live_tables']:,} live), "
        f"{shape['history_rows']:,} history rows.",
        "",
        "The growth exponent k fits `time ~ n**k` over the sizes: about 0 is constant, 1 linear;",
        f"above {EXPONENT_LIMIT} (in bold) a function grows faster than the contract allows.",
        "Median seconds:",
        "",
    ]
    rows = [[f"`{step}`"] + [f"{base['seconds'][str(n)][step]:.4f}" for n in sizes]
            + [_exponent(base["growth_exponent"][step])] for step in history["steps"]]
    lines += table(["function"] + [f"n = {_size(n)}" for n in sizes] + ["k"], rows) + [""]
    if history["results"][1:]:
        lines += ["The same benchmark against the catalog's history mutants, each the slow version of",
                  "a function that pggit fixed, beside pggit itself (seconds; a dot: not measured at that",
                  "size, where the slow version takes minutes per call):", ""]
        all_sizes = sorted({n for r in history["results"] for n in r["sizes"]})
        rows = [[r["label"], f"`{function}`"]
                + [f"{r['seconds'][str(n)][function]:.4f}" if str(n) in r["seconds"] else "·" for n in all_sizes]
                + [_exponent(r["growth_exponent"][function])] for r, function in compared(history)]
        lines += table(["extension", "function"] + [f"n = {_size(n)}" for n in all_sizes] + ["k"], rows) + [""]
    if plot:
        lines += [f"![What each function costs by history size, log-log]({plot})", ""]
    return lines


def compared(history: dict) -> list[tuple[dict, str]]:
    """(result, function) pairs: per function a mutant slows, pggit's own figures first, then the mutants'."""
    base, mutants = history["results"][0], history["results"][1:]

    def function(result: dict) -> str:  # recorded since the benchmark names it; else as the catalog says
        return result.get("function") or mutants_scale.FUNCTION.get(result["mutant"], "verify_integrity")

    functions = list(dict.fromkeys(function(r) for r in mutants))
    return [pair for f in functions for pair in [(base, f)] + [(r, f) for r in mutants if function(r) == f]]


def _exponent(k: float) -> str:
    return f"**{k:.2f}**" if k > EXPONENT_LIMIT else f"{k:.2f}"


def plot(history: dict, pyplot, save) -> str:
    """Median seconds by history size, log-log: every function of pggit, and verify_integrity of each mutant."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    base = history["results"][0]
    sizes = base["sizes"]
    colours = plt.get_cmap("tab20").colors
    for step, colour in zip(history["steps"], colours):
        left.plot(sizes, [base["seconds"][str(n)][step] for n in sizes], marker="o", color=colour,
                  label=f"{step} (k = {base['growth_exponent'][step]:.2f})")
    left.set_title("pggit, every function")
    left.legend(frameon=False, fontsize=7, loc="upper left")
    for (result, function), colour in zip(compared(history), ["#1f6fb2", "#c0392b", "#e67e22", "#8e44ad", "#16a085",
                                                              "#2c3e50", "#d35400"]):
        at = result["sizes"]
        right.plot(at, [result["seconds"][str(n)][function] for n in at], marker="o", color=colour,
                   linestyle="-" if result is history["results"][0] else "--",
                   label=f"{function}: {result['label']} (k = {result['growth_exponent'][function]:.2f})")
    right.set_title("pggit and its history mutants")
    right.legend(frameon=False, fontsize=7, loc="upper left")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("history size n (commits)")
        ax.set_ylabel("median seconds")
    fig.suptitle("What pggit costs as its history grows (log-log; k: growth exponent)")
    fig.tight_layout()
    return save(fig, PLOT_NAME)
