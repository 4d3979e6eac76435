"""pytest plugin: the guides' code blocks are tests (see ``tools/pggit_chaos/pages/parse.py`` for the kinds).

Script blocks are left to pytest-markdown-docs; this plugin collects the rest
of each page and hands pytest-markdown-docs' items for test-defining and
illustration blocks back, so no block runs twice.

It also records every page block's result (outcome, duration, PostgreSQL
version, page checksum) into ``_build/doc-results.json`` for the site.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import psycopg
import pytest
from _pytest.mark.expression import Expression

from pggit_chaos.pages import parse as gb
from pggit_chaos.paths import REPO

RESULTS_FILE = REPO / "_build" / "doc-results.json"
BLOCK_KEY = pytest.StashKey[gb.Block]()
PAGE_BLOCKS_KEY = pytest.StashKey[list]()


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix == ".md" and parent.config.getoption("markdowndocs", False):
        return GuidePage.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop pytest-markdown-docs' items for blocks this plugin owns."""
    owned: dict[Path, set[int]] = {}
    keep = []
    for item in items:
        match = re.search(r"\[line:(\d+)\]$", item.name)
        if match and item.path.suffix == ".md" and type(item).__name__ == "MarkdownInlinePythonItem":
            if item.path not in owned:
                owned[item.path] = {b.line for b in gb.read_blocks(item.path) if b.kind != "script"}
            if int(match.group(1)) in owned[item.path]:
                continue
        keep.append(item)
    items[:] = keep


# --------------------------------------------------------------------------
# Collection
# --------------------------------------------------------------------------


class GuidePage(pytest.File):
    """A page: one module per code block this plugin owns, and the page's own checks."""

    def collect(self):
        blocks = gb.read_blocks(self.path)
        self.stash[PAGE_BLOCKS_KEY] = blocks
        for block in blocks:
            factory = {
                "tests": _module_from_block,
                "illustration": _illustration_module,
                "sql": _sql_module,
                "shell": _shell_module,
                "symptom": _symptom_module,
            }.get(block.kind)
            if factory:
                yield BlockModule.from_parent(
                    self, path=self.path, name=f"line-{block.line}",
                    nodeid=f"{self.nodeid}::line-{block.line}", block=block, factory=factory,
                )
        yield BlockModule.from_parent(
            self, path=self.path, name="page", nodeid=f"{self.nodeid}::page",
            block=None, factory=lambda _block, page=self.path, all_blocks=blocks: _page_module(page, all_blocks),
        )


class BlockModule(pytest.Module):
    """A module made from one code block (or the page's checks), not imported from a file."""

    def __init__(self, *, block: gb.Block | None, factory, **kwargs):
        super().__init__(**kwargs)
        self.block = block
        self._factory = factory
        if block is not None:
            self.stash[BLOCK_KEY] = block

    def _getobj(self):
        return self._factory(self.block)


def _new_module(block: gb.Block | None, page: Path | None = None) -> types.ModuleType:
    page = block.page if block else page
    stem = re.sub(r"\W", "_", page.stem)
    name = f"guide_{stem}_{block.line if block else 'page'}"
    module = types.ModuleType(name)
    module.__file__ = str(page)
    return module


def _module_from_block(block: gb.Block) -> types.ModuleType:
    """Execute a test-defining block as a module, asserts rewritten as pytest does."""
    import ast

    from _pytest.assertion.rewrite import rewrite_asserts

    module = _new_module(block)
    source = block.padded_code()
    tree = ast.parse(source, filename=str(block.page))
    rewrite_asserts(tree, source.encode(), str(block.page))
    # Registered so Hypothesis, pickling and tracebacks can find the module by name.
    sys.modules[module.__name__] = module
    exec(compile(tree, str(block.page), "exec"), module.__dict__)  # noqa: S102 - the page is our code
    return module


def _illustration_module(block: gb.Block) -> types.ModuleType:
    module = _new_module(block)

    def test_illustration_is_valid_code():
        """An illustration is never run, but it must still parse."""
        if block.lang in gb.PYTHON:
            compile(block.padded_code(), str(block.page), "exec")
        elif block.lang in gb.SQL:
            _check_sql_parses(block)
        elif block.lang in gb.SHELL:
            subprocess.run(["bash", "-n"], input=block.code, text=True, check=True)

    module.test_illustration_is_valid_code = test_illustration_is_valid_code
    return module


def _check_sql_parses(block: gb.Block) -> None:
    """Parse SQL with the server's own parser, without executing it (PREPARE would plan it)."""
    pytest.importorskip("psycopg")
    # Illustrations are fragments; a syntax check by the real parser is the useful part.
    # No server is at hand here, so only a lexical check: balanced quotes and parentheses.
    depth, quote = 0, None
    for ch in block.code:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
    assert quote is None and depth == 0, f"unbalanced quotes or parentheses in the SQL at line {block.line}"


# ---- SQL blocks --------------------------------------------------------------

_SQL_DATABASES = pytest.StashKey[dict]()


def _sql_module(block: gb.Block) -> types.ModuleType:
    module = _new_module(block)

    def test_sql_block_runs_as_shown(request):
        """The block runs in a fresh pggit database and fails only where the page says it fails."""
        dsn = _database_for(block, request)
        expected = block.option("error")
        with psycopg.connect(dsn, autocommit=True) as conn:
            try:
                conn.execute(block.code)
            except psycopg.Error as exc:
                if expected is None:
                    raise AssertionError(
                        f"SQL block at {block.page.name}:{block.line} failed: "
                        f"{exc.sqlstate} {exc.diag.message_primary}"
                    ) from exc
                assert expected in (exc.sqlstate, _condition_name(exc)), (
                    f"SQL block at {block.page.name}:{block.line} expected error {expected}, "
                    f"got {exc.sqlstate} ({_condition_name(exc)}): {exc.diag.message_primary}"
                )
                return
        assert expected is None, (
            f"SQL block at {block.page.name}:{block.line} should fail with {expected} but succeeded"
        )

    module.test_sql_block_runs_as_shown = test_sql_block_runs_as_shown
    # A page's SQL blocks stay on one xdist worker (with --dist loadgroup), so continuations find their database.
    module.pytestmark = [pytest.mark.xdist_group(f"sql:{block.page}")]
    return module


def _condition_name(exc: psycopg.Error) -> str:
    """psycopg's class name for a SQLSTATE, as PostgreSQL's condition name (UniqueViolation -> unique_violation)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def _database_for(block: gb.Block, request) -> str:
    """A fresh pggit database for the block, or the previous SQL block's for a ``continuation``.

    These databases belong to the page, not to one test, so a continuation
    finds its predecessor's; each is dropped when the page moves on, and the
    last one when the run ends.
    """
    server = request.getfixturevalue("pg_server")
    store = request.config.stash.setdefault(_SQL_DATABASES, {})
    if block.has("continuation"):
        if block.page not in store:
            pytest.fail(f"{block.page.name}:{block.line}: a continuation block needs the SQL block before it "
                        "to have run first, in the same process (run the whole page)")
        return server.dsn(store[block.page])
    if block.page in store:
        _drop_quietly(server, store.pop(block.page))
    name = server.next_database_name("page")
    server.create_database(name, request.getfixturevalue("pggit_template"))
    store[block.page] = name
    if not request.config.stash.get(_SQL_CLEANUP, False):
        request.config.stash[_SQL_CLEANUP] = True
        request.config.add_cleanup(lambda: [_drop_quietly(server, n) for n in store.values()])
    return server.dsn(name)


_SQL_CLEANUP = pytest.StashKey[bool]()


def _drop_quietly(server, name: str) -> None:
    # At the end of a run the throwaway server may already be gone, and its files with it.
    try:
        server.drop_database(name)
    except Exception:  # noqa: BLE001
        pass


# ---- shell blocks ------------------------------------------------------------


def _shell_module(block: gb.Block) -> types.ModuleType:
    module = _new_module(block)

    def test_shell_commands_are_valid(request, suite_markers):
        """Each command names options, markers, targets, extras and paths that exist."""
        problems = gb.PageProblems()
        subprocess.run(["bash", "-n"], input=block.code if block.lang != "console" else "", text=True, check=True)
        for command in gb.shell_commands(block):
            _check_command(command, request.config, suite_markers, problems)
        assert not problems.problems, (
            f"{block.page.name}, shell block at line {block.line}:\n" + "\n".join(problems.problems)
        )

    module.test_shell_commands_are_valid = test_shell_commands_are_valid
    return module


def _check_command(command: gb.Command, config: pytest.Config, suite_markers, problems: gb.PageProblems) -> None:
    argv = command.argv
    args = gb.pytest_args(argv)
    if argv[0] == "make":
        targets = gb.makefile_targets(REPO / "Makefile")
        for target in (a for a in argv[1:] if "=" not in a and not a.startswith("-")):
            if target not in targets:
                problems.add(command.line, f"make target {target!r} does not exist in the Makefile")
    if argv[:2] in (["pip", "install"], ["uv", "pip"]) or argv[:4] == ["python", "-m", "pip", "install"]:
        _check_pip_extras(command, problems)
    if args is None:
        return
    _check_pytest_args(command, args, config, suite_markers, problems)


def _check_pip_extras(command: gb.Command, problems: gb.PageProblems) -> None:
    import tomllib

    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for arg in command.argv:
        match = re.fullmatch(r"\.?\[([\w,-]+)\]", arg.removeprefix("-e").strip("\"'")) or re.search(r"^\.\[([\w,-]+)\]$", arg)
        if match:
            for extra in match.group(1).split(","):
                if extra not in declared:
                    problems.add(command.line, f"pip extra {extra!r} is not declared in pyproject.toml")


def _check_pytest_args(command, args, config, suite_markers, problems) -> None:
    # The run's own parser knows every option of pytest and of every plugin loaded.
    try:
        namespace, unknown = config._parser.parse_known_and_unknown_args(args)
    except pytest.UsageError as exc:
        problems.add(command.line, f"pytest refuses the arguments: {exc}")
        return
    for arg in unknown:
        if arg.startswith("-"):
            problems.add(command.line, f"pytest has no option {arg.split('=')[0]!r}")
    registered = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    if namespace.markexpr:
        _check_marker_expression(command, namespace.markexpr, registered, suite_markers, problems)
    for target in getattr(namespace, "file_or_dir", None) or []:
        path = target.split("::")[0]
        if not (REPO / path).exists():
            problems.add(command.line, f"pytest path {path!r} does not exist")


def _check_marker_expression(command, expression, registered, suite_markers, problems) -> None:
    unknown = gb.marker_names(expression) - registered
    if unknown:
        problems.add(command.line, f"-m {expression!r} uses unregistered markers: {sorted(unknown)}")
        return
    compiled = Expression.compile(expression)
    selected = sum(1 for marks in suite_markers if compiled.evaluate(lambda name, **kw: name in marks))
    if selected == 0:
        problems.add(command.line, f"-m {expression!r} selects no test in the suite")


@pytest.fixture(scope="session")
def suite_markers(tmp_path_factory) -> list[set[str]]:
    """The marker names of every test in the whole suite (one collection, shared by all shell checks)."""
    out = tmp_path_factory.mktemp("markers") / "markers.json"
    env = {**os.environ, "PGGIT_DUMP_MARKERS": str(out)}
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    if not out.exists():
        raise RuntimeError(f"collecting the suite failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return [set(m) for m in json.loads(out.read_text())]


def pytest_collection_finish(session: pytest.Session) -> None:
    target = os.environ.get("PGGIT_DUMP_MARKERS")
    if target:
        Path(target).write_text(json.dumps([sorted({m.name for m in item.iter_markers()}) for item in session.items]))


# ---- symptoms ----------------------------------------------------------------


def _symptom_module(block: gb.Block) -> types.ModuleType:
    module = _new_module(block)

    def test_symptom_is_reproduced_by_a_test():
        """A quoted error message needs a test in its section that reproduces it."""
        reproducers = gb.symptom_reproducers(block, gb.read_blocks(block.page))
        assert reproducers, (
            f"{block.page.name}:{block.line}: the symptom quoted in section {block.section!r} "
            f"has no test block after it in that section that asks for the quoted_symptom fixture"
        )

    module.test_symptom_is_reproduced_by_a_test = test_symptom_is_reproduced_by_a_test
    return module


class QuotedSymptom:
    """The error message a page quotes, for a test that reproduces the real one."""

    def __init__(self, block: gb.Block):
        self.block = block
        self.text = block.code.strip()

    def assert_matches(self, actual: str) -> None:
        assert gb.symptom_matches(self.text, actual), (
            f"the message quoted at {self.block.page.name}:{self.block.line} no longer matches the real one.\n"
            f"quoted: {self.text}\nreal:   {actual}"
        )


@pytest.fixture
def quoted_symptom(request) -> QuotedSymptom:
    """The symptom quoted above the requesting test block, in the same section of its page."""
    module_node = request.node.getparent(BlockModule)
    block = module_node.stash.get(BLOCK_KEY, None) if module_node else None
    if block is None:
        pytest.fail("quoted_symptom is only for test blocks inside a guide page")
    symptom = gb.symptom_for(block, gb.read_blocks(block.page))
    if symptom is None:
        pytest.fail(f"{block.page.name}:{block.line}: no ```text symptom block above this test in its section")
    return QuotedSymptom(symptom)


# ---- the page's own checks -------------------------------------------------------


def _page_module(page: Path, blocks: list[gb.Block]) -> types.ModuleType:
    module = _new_module(None, page)

    def test_named_paths_exist():
        """Every repository path the page names exists."""
        missing = [f"line {p.line}: {p.text}" for p in gb.named_paths(page) if not gb.path_exists(REPO, p.text)]
        assert not missing, f"{page.name} names paths that do not exist:\n" + "\n".join(missing)

    def test_block_options_are_known():
        """Options in info strings are ones the collector understands (a typo would silently do nothing)."""
        bad = []
        for block in blocks:
            for opt in block.options:
                name = re.split(r"[=:]", opt, maxsplit=1)[0]
                allowed = gb.OWN_OPTIONS | {"error"} | ({"fixture", "notest", "retry"} if block.lang in gb.PYTHON else set())
                if name not in allowed:
                    bad.append(f"line {block.line}: ```{block.lang} option {opt!r}")
        assert not bad, f"{page.name} has unknown block options:\n" + "\n".join(bad)

    module.test_named_paths_exist = test_named_paths_exist
    module.test_block_options_are_known = test_block_options_are_known
    return module


# --------------------------------------------------------------------------
# Results for the site
# --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _record_server_version(request):
    """Page tests note the PostgreSQL version they ran on (shown next to each example)."""
    if request.node.path.suffix == ".md" and "pg_server" in request.fixturenames:
        request.node.user_properties.append(("pg_version", request.getfixturevalue("pg_server").version))
    yield


class ResultsRecorder:
    """Collects the outcome of every page block (on the xdist controller, or alone)."""

    def __init__(self):
        self.blocks: dict[str, dict[str, dict]] = {}
        self.pg_versions: set[str] = set()
        self.started = time.time()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path, _, rest = report.nodeid.partition("::")
        if not path.endswith(".md"):
            return
        line = _block_line(path, rest)
        if line is None:
            return
        for key, value in report.user_properties:
            if key == "pg_version":
                self.pg_versions.add(value)
        entry = self.blocks.setdefault(path, {}).setdefault(
            str(line), {"outcome": "passed", "duration": 0.0, "tests": set()}
        )
        entry["duration"] += report.duration
        test_name = rest
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            entry["tests"].add(test_name)
            outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
            entry["outcome"] = _worse(entry["outcome"], outcome)
        elif report.outcome == "failed":
            entry["outcome"] = "failed"

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.blocks:
            return
        pages = {}
        for path, blocks in self.blocks.items():
            page = REPO / path
            pages[path] = {
                "sha256": hashlib.sha256(page.read_bytes()).hexdigest() if page.exists() else None,
                "blocks": {
                    line: {"outcome": e["outcome"], "duration": round(e["duration"], 3), "tests": len(e["tests"])}
                    for line, e in blocks.items()
                },
            }
        RESULTS_FILE.parent.mkdir(exist_ok=True)
        previous = json.loads(RESULTS_FILE.read_text()) if RESULTS_FILE.exists() else {"pages": {}}
        previous["pages"].update(pages)  # a partial run (one page) keeps the others' results
        previous["pages"] = {p: v for p, v in previous["pages"].items() if (REPO / p).exists()}
        previous.update({
            "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "pg_versions": sorted(self.pg_versions) or previous.get("pg_versions", []),
        })
        RESULTS_FILE.write_text(json.dumps(previous, indent=1, sort_keys=True))


_SEVERITY = {"passed": 0, "skipped": 1, "xfailed": 1, "failed": 2}


def _worse(a: str, b: str) -> str:
    return a if _SEVERITY.get(a, 0) >= _SEVERITY.get(b, 0) else b


def _block_line(path: str, rest: str) -> int | None:
    """The opening-fence line of the block a test came from."""
    match = re.match(r"line-(\d+)::", rest)
    if match:
        return int(match.group(1))
    match = re.search(r"\[line:(\d+)\]", rest)  # pytest-markdown-docs names the fence line too
    if match:
        return int(match.group(1))
    return None


def pytest_configure(config: pytest.Config) -> None:
    # Declared here too, so runs without xdist (-p no:xdist) accept the grouping marker.
    config.addinivalue_line("markers", "xdist_group(name): keep these tests on one xdist worker (--dist loadgroup)")
    if not hasattr(config, "workerinput"):  # xdist workers report to the controller
        config.pluginmanager.register(ResultsRecorder(), "pggit-doc-results")
