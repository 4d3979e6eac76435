"""The workflows read offline: every job, every matrix entry, every manual category, and the tests each selects.

A job's test commands (``make test|test-all|smoke|full|weekly|site`` and ``pytest``)
are read with their environment filled in: matrix values, manual inputs (or
their defaults), and the outputs of ``pggit-chaos progression`` steps, which
are run here through the package itself. A command or an expression this
module cannot read raises ``Unreadable``: no job is skipped.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml
from pggit_chaos import cli
from pggit_chaos.pages import collected, markexpr

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
MAKEFILE = REPO / "Makefile"
MAKE_PYTEST_TARGETS = ("test", "test-all", "smoke", "full", "weekly", "site")
# pytest options that take a value (the others are flags).
VALUE_OPTIONS = {"-m", "-o", "-p", "-n", "--dist", "--junitxml", "--pg-version", "--soak-minutes", "--crash-cycles",
                 "--soak-history", "--hypothesis-profile", "--hypothesis-seed", "-c", "--rootdir"}


class Unreadable(ValueError):
    """A workflow holds a command or expression these checks cannot read: fix the workflow or this reader."""


@dataclass(frozen=True)
class Selection:
    """One test command of one job run: the -m expression and the paths it gives pytest."""

    workflow: str
    job: str
    context: str  # the matrix entry and manual input it ran with
    command: str
    markers: str
    paths: tuple[str, ...]


@dataclass
class JobRun:
    """One job with one matrix entry and one manual input: its test commands, and its other commands."""

    workflow: str
    job: str
    context: str
    selections: list[Selection] = field(default_factory=list)
    progression_calls: list[list[str]] = field(default_factory=list)


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    return data


def workflows() -> dict[str, dict]:
    return {path.name: load(path) for path in sorted(WORKFLOWS.glob("*.yml"))}


@cache
def make_targets() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each make target's first pytest line, read once: its -m expression (site: none) and the paths it
    collects when PYTEST_ARGS names none (the chaos tiers: CHAOS_PATHS; test: PGGIT_PATHS; site: docs; empty:
    every test path)."""
    text = MAKEFILE.read_text()
    paths = {name: re.search(rf"^{name}_PATHS := (.+)$", text, re.M).group(1) for name in ("CHAOS", "PGGIT")}
    only = {f"$({name}_ONLY)": tuple(value.replace("$(CHAOS_PATHS)", paths["CHAOS"]).split())
            for name, value in paths.items()}
    targets, current = {}, None
    for line in text.splitlines():
        if match := re.match(r"^([a-z-]+):", line):
            current = match.group(1)
        elif current and line.startswith("\t") and "pytest" in line and current not in targets:
            found = re.search(r'-m "([^"]+)"', line)
            words = line.split()
            paths = next((only[w] for w in words if w in only), tuple(w for w in words if w == "docs"))
            targets[current] = (found.group(1) if found else "", paths)
    return targets


def progression_outputs(args: list[str]) -> dict[str, str]:
    """Run ``pggit-chaos ARGS`` in this process, as the step does, and read its NAME=VALUE lines."""
    return dict(_progression_outputs(tuple(args)))


@cache
def _progression_outputs(args: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    args = list(args)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(args)
    if status != 0:
        raise Unreadable(f"pggit-chaos {' '.join(args)} exited {status}")
    outputs = {}
    for line in out.getvalue().splitlines():
        name, sep, value = line.partition("=")
        if not sep:
            raise Unreadable(f"pggit-chaos {' '.join(args)} printed {line!r}, not NAME=VALUE")
        outputs[name] = value
    return tuple(outputs.items())


def _expression(text: str, scope: dict) -> str:
    """The value of a ``${{ ... }}`` expression this reader knows: matrix, steps' outputs, inputs with a default."""
    text = text.strip()
    if match := re.fullmatch(r"matrix\.([\w-]+)", text):
        return str(scope["matrix"][match.group(1)])
    if match := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", text):
        return scope["steps"][match.group(1)][match.group(2)]
    if match := re.fullmatch(r"inputs\.([\w-]+) \|\| '([^']*)'", text):
        return scope["inputs"].get(match.group(1)) or match.group(2)
    if text == "join(needs.*.result, ' ')":
        return "success"  # the results of the jobs a summary waits for: every one passed, for this reading
    raise Unreadable(f"cannot evaluate ${{{{ {text} }}}}")


def _substitute(value: str, scope: dict) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _expression(m.group(1), scope), str(value))


def _shell_env(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            raise Unreadable(f"${name} is not set by the job, the step or the matrix")
        return env[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, text)


def _words(command: str) -> list[str]:
    return list(_split_words(command))


@cache  # each job's commands are read once per selection check, thousands of times a run
def _split_words(command: str) -> tuple[str, ...]:
    words = shlex.split(command)
    for end in ("||", ">>", ">", "&&", ";", "|"):
        if end in words:
            words = words[:words.index(end)]
    if words and words[0].endswith("as-root"):
        words = words[1:]
    return tuple(words)


def _pytest_args(args: list[str]) -> tuple[str | None, tuple[str, ...]]:
    markers, paths, i = None, [], 0
    while i < len(args):
        word = args[i]
        if word in ("-k",) or word.startswith("-k"):
            raise Unreadable("-k selections are not read here: select with -m or node ids")
        if word in VALUE_OPTIONS:
            if word == "-m":
                markers = args[i + 1]
            i += 2
            continue
        if not word.startswith("-"):
            paths.append(word)
        i += 1
    return markers, tuple(paths)


def test_command(command: str, env: dict[str, str]) -> tuple[str, tuple[str, ...]] | None:
    """(markers, paths) of a make or pytest command, or None when the line runs no tests."""
    words = _words(command)
    if not words:
        return None
    if words[0] == "make" and len(words) > 1 and words[1] in MAKE_PYTEST_TARGETS:
        args = next((shlex.split(_shell_env(w.split("=", 1)[1], env)) for w in words if w.startswith("PYTEST_ARGS=")), [])
        markers, paths = _pytest_args(args)
        target_markers, target_paths = make_targets()[words[1]]
        return (target_markers if markers is None else markers), (paths or target_paths)
    if words[0].endswith("/pytest") or words[0] == "pytest":
        markers, paths = _pytest_args([_shell_env(w, env) for w in words[1:]])
        return markers or "", paths
    if any(w == "pytest" or w.endswith("/pytest") for w in words) or (words[0] == "make" and len(words) > 1
                                                                      and words[1] not in ("install",)):
        raise Unreadable(f"a test command this reader does not know: {command!r}")
    return None


def _matrices(job: dict, plan: dict[str, str]) -> list[dict]:
    matrix = (job.get("strategy") or {}).get("matrix")
    if matrix is None:
        return [{}]
    if isinstance(matrix, str) or isinstance(matrix.get("include"), str):
        text = matrix if isinstance(matrix, str) else matrix["include"]
        found = re.fullmatch(r"\$\{\{\s*fromJSON\(needs\.plan\.outputs\.([\w-]+)\)\s*\}\}", text.strip())
        if not found:
            raise Unreadable(f"a matrix this reader cannot expand: {text!r}")
        return json.loads(plan[found.group(1)])
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    entries = [{}]
    for name, values in axes.items():
        entries = [{**e, name: v} for e in entries for v in values]
    return entries + list(matrix.get("include") or [])


def _plan_outputs(workflow: dict, inputs: dict) -> dict[str, str]:
    plan = workflow["jobs"].get("plan")
    if plan is None:
        return {}
    scope = {"matrix": {}, "steps": {}, "inputs": inputs}
    for step in plan["steps"]:
        if "run" in step:
            env = {k: _substitute(v, scope) for k, v in (step.get("env") or {}).items()}
            words = [_shell_env(w, env) for w in _words(step["run"])]
            if words and words[0].endswith("pggit-chaos"):
                scope["steps"][step["id"]] = progression_outputs(words[1:])
    return {name: _substitute(value, scope) for name, value in plan.get("outputs", {}).items()}


def _input_choices(workflow: dict) -> list[dict]:
    on = workflow["on"]
    dispatch = (on.get("workflow_dispatch") or {}) if isinstance(on, dict) else {}
    inputs = dispatch.get("inputs") or {}
    choices = [{}]  # a push, a pull request or the schedule: no inputs, every default
    for name, spec in inputs.items():
        if spec.get("type") == "choice":
            choices += [{name: option} for option in spec["options"]]
    return choices


def job_runs(name: str, workflow: dict) -> list[JobRun]:
    """Every run of every job of the workflow: per manual choice, per matrix entry."""
    runs = []
    for inputs in _input_choices(workflow):
        plan = _plan_outputs(workflow, inputs)
        for job_name, job in workflow["jobs"].items():
            if job_name == "plan":
                continue
            for matrix in _matrices(job, plan):
                context = json.dumps({"inputs": inputs, "matrix": matrix}, sort_keys=True)
                run = JobRun(name, job_name, context)
                scope = {"matrix": matrix, "steps": {}, "inputs": inputs}
                job_env = {k: _substitute(v, scope) for k, v in (job.get("env") or {}).items()}
                for step in job.get("steps", []):
                    if "run" not in step:
                        continue
                    env = {**job_env, **{k: _substitute(v, scope) for k, v in (step.get("env") or {}).items()}}
                    if "steps.select.outputs.markers != ''" in str(step.get("if", "")) and \
                            not scope["steps"].get("select", {}).get("markers"):
                        continue
                    words = _words(step["run"]) if "\n" not in step["run"].strip() else []
                    if words and words[0].endswith("pggit-chaos") and words[1] == "progression":
                        args = [_shell_env(w, env) for w in words[1:]]
                        run.progression_calls.append(args)
                        scope["steps"][step.get("id", "")] = progression_outputs(args)
                        continue
                    for line in step["run"].splitlines():
                        selected = test_command(line.strip(), env)
                        if selected is not None:
                            run.selections.append(Selection(name, job_name, context, line.strip(), *selected))
                runs.append(run)
    return runs


def all_job_runs() -> list[JobRun]:
    return [run for name, data in workflows().items() for run in job_runs(name, data)]


@cache
def collected_marks() -> dict[str, frozenset[str]]:
    """Every test of the suite (soak tests too) with its markers, collected once by pytest itself."""
    return {nodeid: frozenset(marks) for nodeid, marks in collected.collected_markers().items()}


@cache
def selected(markers: str, paths: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The collected tests a ``-m markers`` run over ``paths`` selects."""
    expr = markexpr.parse(markers)
    prefixes = tuple(p.rstrip("/") for p in paths)
    return tuple(nodeid for nodeid, marks in collected_marks().items()
                 if expr.matches(marks) and (not prefixes or nodeid.startswith(prefixes)))
