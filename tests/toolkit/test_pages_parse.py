"""The block parser reads every closed fence, and refuses a fence left open, naming the page and line."""

from __future__ import annotations

import pytest
from pggit_chaos.pages import parse


@pytest.mark.parametrize("markdown", [
    "# Page\n\n```sql\nSELECT 1;\n```\n",
    "# Page\n\n```sql\nSELECT 1;\n```",  # no line break after the closing fence
    "# Page\n\n````python\nprint('```')\n`````\n",  # a longer closing fence closes a shorter opening
    "# Page\n\n~~~bash\necho hi\n~~~\n",
    "- item\n\n  ```sql\n  SELECT 1;\n  ```\n",
    "> ```sql\n> SELECT 1;\n> ```\n",
])
def test_closed_fences_are_read(tmp_path, markdown):
    page = tmp_path / "page.md"
    page.write_text(markdown)
    [block] = parse.read_blocks(page)
    assert block.kind in {"sql", "script", "shell"}


@pytest.mark.parametrize(("markdown", "line"), [
    ("# Page\n\n```sql\nSELECT 1;\n\n## Next\n\nmore text\n", 3),
    ("# Page\n\n```sql\nSELECT 1;\n```\n\n````python\nx = 1\n```\n", 7),  # a shorter fence does not close it
    ("# Page\n\n```python", 3),
    ("- item\n\n  ```sql\n  SELECT 1;\n\nnext paragraph\n", 3),  # closed only by the end of its list item
    ("# Page\n\n```{note}\nA directive left open.\n", 3),
])
def test_an_unclosed_fence_is_an_error_naming_the_page_and_line(tmp_path, markdown, line):
    page = tmp_path / "page.md"
    page.write_text(markdown)
    with pytest.raises(parse.PageError, match=rf"page\.md:{line}: the `+ fence opened here is never closed"):
        parse.read_blocks(page)


def _blocks_and_headings(tokens) -> list[tuple]:
    return [(t.type, t.info, t.content, tuple(t.map or ())) for i, t in enumerate(tokens)
            if t.type == "fence" or (i and tokens[i - 1].type == "heading_open")]


def test_the_block_parser_reads_every_page_and_docstring_as_the_full_parser_does():
    """Skipping inline parsing changes no fence and no heading of any page, nor of the toolkit's modules (docstrings)."""
    from markdown_it import MarkdownIt
    from pggit_chaos.paths import REPO

    full = MarkdownIt("commonmark")
    texts = [p.read_text(encoding="utf-8") for p in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]]
    modules = [p.read_text(encoding="utf-8") for p in sorted((REPO / "tools" / "pggit_chaos").rglob("*.py"))]
    texts += [text for text in modules if "```" in text]
    compared = 0
    for text in texts:
        expected = _blocks_and_headings(full.parse(text))
        assert _blocks_and_headings(parse.block_parser().parse(text)) == expected
        compared += sum(1 for kind, *_ in expected if kind == "fence")
    assert compared > 200  # positive control: the pages' and docstrings' fences were there to compare
    # Inline parsing really is skipped: a heading's text keeps its markup and has no children.
    tokens = parse.block_parser().parse("# A `code` *word*\n")
    assert tokens[1].content == "A `code` *word*" and not tokens[1].children


def test_pytest_markdown_docs_parses_with_the_block_parser(pytestconfig):
    assert pytestconfig.hook.pytest_markdown_docs_markdown_it() is parse.block_parser()


def test_the_block_parser_parses_each_text_once_unless_given_an_env():
    """The page collector and pytest-markdown-docs both read every page: the second reading reuses the tokens."""
    parser = parse.block_parser()
    text = "# Heading\n\n```python\nx = 1\n```\n"
    assert parser.parse(text) is parser.parse(text)
    assert parser.parse(text + "\n") is not parser.parse(text)  # another text, its own tokens
    env: dict = {}
    assert parser.parse(text, env) is not parser.parse(text)  # an env gathers what this parse finds
