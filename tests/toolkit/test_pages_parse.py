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
