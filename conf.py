"""Sphinx configuration of the pggit chaos handbook (the site lives in docs/)."""

project = "pggit chaos handbook"
author = "pggit contributors"
copyright = "2026, pggit contributors"

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

extensions = ["myst_parser", "pggit_chaos.pages.sphinx"]
root_doc = "docs/index"
# Only the docs/ tree is the site; README, tests and tools are not pages.
include_patterns = ["docs/**"]
# docs/_data holds generated results and fragments that pages include, not pages.
exclude_patterns = ["_build", ".venv", "docs/_root", "docs/_static", "docs/_data"]

myst_enable_extensions = ["linkify", "colon_fence", "deflist"]
myst_heading_anchors = 3
nitpicky = True

html_theme = "sphinx_book_theme"
html_title = project
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
}

# The site's front page is docs/index; the top-level index.html only redirects there.
html_extra_path = ["docs/_root"]
html_static_path = ["docs/_static"]
# The theme reads its colour mode from here; left empty, its script logs a console error.
html_context = {"default_mode": "auto"}
html_favicon = "docs/_static/favicon.svg"
