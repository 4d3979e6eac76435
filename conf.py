"""Sphinx configuration of the pggit chaos handbook (the site lives in docs/)."""

project = "pggit chaos handbook"
author = "pggit contributors"
copyright = "2026, pggit contributors"

import re
import sys
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# The site's version is the installed package's (pyproject.toml's [project] version), never typed here.
release = version = metadata.version(metadata.packages_distributions()["pggit_chaos"][0])

extensions = ["myst_parser", "sphinx.ext.autodoc", "pggit_chaos.pages.sphinx"]
root_doc = "docs/index"
# Only the docs/ tree is the site; README, tests and tools are not pages.
include_patterns = ["docs/**"]
# docs/_data holds generated results and fragments that pages include, not pages; docs/_scratch_* are
# pages that tests of the page machinery make for a few seconds, which a build running meanwhile must not read.
exclude_patterns = ["_build", ".venv", "docs/_root", "docs/_static", "docs/_data", "docs/_scratch_*"]

myst_enable_extensions = ["linkify", "colon_fence", "deflist"]
myst_heading_anchors = 3
nitpicky = True

# The toolkit reference (docs/reference/toolkit.md) is autodoc over pggit_chaos. Signatures leave their
# type hints out: they name psycopg and typing objects that no inventory here resolves, which nitpicky
# mode would report; the docstrings say what each argument is.
autodoc_typehints = "none"
autodoc_member_order = "bysource"


def markdown_fences_to_rst(app, what, name, obj, options, lines: list[str]) -> None:
    """Render a docstring's Markdown code fences (which pytest-markdown-docs runs) as reST code blocks."""
    out: list[str] = []
    fence_indent = None
    for line in lines:
        stripped = line.strip()
        if fence_indent is None and stripped.startswith("```"):
            fence_indent = line[: len(line) - len(line.lstrip())]
            words = stripped[3:].split()
            fixtures = [word.split(":", 1)[1] for word in words[1:] if word.startswith("fixture:")]
            if out and out[-1].strip():
                out.append("")
            out.append(f"{fence_indent}.. code-block:: {words[0] if words else 'text'}")
            if fixtures:
                out.append(f"{fence_indent}   :caption: receives the pytest fixtures: {', '.join(fixtures)}")
            out.append("")
        elif fence_indent is not None and stripped == "```":
            out.append("")
            fence_indent = None
        elif fence_indent is not None:
            out.append(f"{fence_indent}   {line[len(fence_indent):]}" if stripped else "")
        else:
            out.append(line)
    lines[:] = out


def command_lines_to_literal(app, what, name, obj, options, lines: list[str]) -> None:
    """Show a module docstring's indented command lines (``    pggit-chaos mutate --tier smoke|full``) as
    literal text, as they read in the source, not as a block quote whose ``*`` and ``|`` reST would parse;
    and Markdown's four-backtick inline code (```` ```text output ```` ````) as a reST literal."""
    if what != "module":
        return
    out: list[str] = []
    for i, line in enumerate(lines):
        starts_block = (line.startswith("    ") and i >= 2 and not lines[i - 1].strip()
                        and lines[i - 2].strip() and not lines[i - 2].startswith(" ")
                        and not lines[i - 2].rstrip().endswith("::"))
        if starts_block:
            out[-1:] = ["", "::", ""]
        out.append(re.sub(r"````\s*(.*?)\s*````", r"``\1``", line))
    lines[:] = out


def setup(app) -> None:
    app.connect("autodoc-process-docstring", markdown_fences_to_rst)
    app.connect("autodoc-process-docstring", command_lines_to_literal)

html_theme = "sphinx_book_theme"
html_title = project
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    # Under every page's content: which version of the handbook (and its toolkit) the page belongs to.
    "extra_footer": f'<p class="site-version">{project}, version {version}</p>',
}

# The site's front page is docs/index; the top-level index.html only redirects there.
html_extra_path = ["docs/_root"]
html_static_path = ["docs/_static"]
# The theme reads its colour mode from here; left empty, its script logs a console error.
html_context = {"default_mode": "auto"}
html_favicon = "docs/_static/favicon.svg"
