"""The glossary's promise, kept: a guide links a glossary term the first time its prose uses it.

The terms are read from the ``{glossary}`` blocks of docs/glossary.md (the lines of a term's aliases
form one entry). The guides are the pages docs/index.md lists under its Tutorial, How-to guides and
Explanation tables of contents, so a guide added there is checked at once. For each guide and each
entry, the first prose use of one of its terms (case-insensitive, whole word, a plural ``s``/``es``
allowed) must be inside a link to that entry, or come after one (``{term}`shrink <shrinking>```
counts for a later "shrinking"). Code blocks, inline code, headings and the text of other links are
not prose; where two terms overlap ("branch head" and "branch"), the longer one is the use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from markdown_it.renderer import RendererHTML
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.mdit import create_md_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"
GLOSSARY = DOCS / "glossary.md"
INDEX = DOCS / "index.md"
# The toctree captions of docs/index.md whose pages are guides; the Reference pages define, they do not guide.
GUIDE_CAPTIONS = {"Tutorial", "How-to guides", "Explanation"}

# Terms whose everyday sense is as common on the guides as the glossary's, each with its reason: their uses
# are not checked (a guide still links one where it means the glossary's sense, which a rule cannot tell).
NOT_CHECKED: dict[str, str] = {
    "example": "also the pages' own examples and example-based tests, not only an input Hypothesis tried",
    "failed": "the everyday past tense of fail: a failed test, the version that failed",
    "full": "an everyday adjective: a full disk, the full version",
    "history": "also pggit's own history of commits and versions, not only a chaos test's record",
    "killed": "also a server or backend killed by a fault, not only a mutant a tier fails on",
    "operation": "the everyday word for any step a session runs, not only an entry of a history",
    "stale": "also PostgreSQL's stale snapshot, not only a badge's old results",
}

# The MyST directives whose body is prose, which a page may put terms in.
ADMONITIONS = {f"{{{name}}}" for name in ("admonition", "attention", "caution", "danger", "error", "hint",
                                          "important", "note", "seealso", "tip", "warning")}
# One character that no term matches across: it stands for inline code and for the text of links.
GAP = "\0"


@dataclass(frozen=True)
class Use:
    """A term's use in a page's prose: ``entry`` is the glossary entry (its first term) it belongs to."""

    line: int  # 1-based
    entry: str
    text: str
    linked: bool


@cache
def md():
    return create_md_parser(MdParserConfig(enable_extensions={"linkify", "colon_fence", "deflist"}), RendererHTML)


@cache
def glossary() -> dict[str, str]:
    """Every term of docs/glossary.md, lower-cased, mapped to its entry (the entry's first term)."""
    terms: dict[str, str] = {}
    for token in md().parse(GLOSSARY.read_text(encoding="utf-8")):
        if token.type != "fence" or token.info.strip() != "{glossary}":
            continue
        entry = None  # an entry's terms are the unindented lines in a row
        for line in token.content.splitlines():
            if not line.strip() or line[0].isspace() or line.startswith(":"):  # a gap, a definition, an option
                entry = None
                continue
            entry = entry or line.strip()
            terms[line.strip().lower()] = entry
    return terms


def guides() -> list[Path]:
    """The pages of docs/index.md's toctrees captioned as guides, in their order there."""
    pages = []
    for token in md().parse(INDEX.read_text(encoding="utf-8")):
        if token.type != "fence" or token.info.strip() != "{toctree}":
            continue
        lines = token.content.splitlines()
        caption = next((line.split(":", 2)[2].strip() for line in lines if line.startswith(":caption:")), None)
        if caption in GUIDE_CAPTIONS:
            pages += [DOCS / f"{line.strip()}.md" for line in lines if line.strip() and not line.startswith(":")]
    return pages


def term_pattern(terms) -> re.Pattern:
    """One pattern for all terms, longest first, so that the longest term is the one a use matches."""
    alternatives = [r"\s+".join(map(re.escape, term.split())) for term in sorted(terms, key=len, reverse=True)]
    return re.compile(rf"(?<![\w@-])(?:{'|'.join(alternatives)})(?:e?s)?(?![\w-])", re.IGNORECASE)


def role_target(content: str) -> str | None:
    """The glossary entry a ``{term}`` role names: ``term`` or ``text <term>``."""
    target = re.search(r"<([^<>]+)>\s*$", content)
    return glossary().get((target[1] if target else content).strip().lower())


def href_target(href: str) -> str | None:
    """The glossary entry a Markdown link to one of the glossary's anchors names."""
    anchor = re.fullmatch(r"(?:\.\./)*glossary(?:\.md)?#term-(.+)", href)
    if not anchor:
        return None
    by_anchor = {re.sub(r"\W+", "-", term).strip("-"): entry for term, entry in glossary().items()}
    return by_anchor.get(anchor[1].lower())


def term_of(text: str) -> str:
    """The term a matched use (the term, or its plural) is."""
    text = re.sub(r"\s+", " ", text).lower()
    return next(term for term in (text, text[:-1], text[:-2]) if term in glossary())


def uses(text: str, first_line: int = 1) -> list[Use]:
    """Every use of a glossary term in the prose of a page's Markdown, in reading order. Uses of the
    terms in NOT_CHECKED are left out; links to their entries are not."""
    terms = glossary()
    pattern = term_pattern(terms)
    found: list[Use] = []
    line = first_line
    in_heading = False
    for token in md().parse(text):
        if token.map:
            line = first_line + token.map[0]
        if token.type in ("heading_open", "heading_close"):
            in_heading = token.type == "heading_open"
        if token.type in ("fence", "colon_fence") and token.info.strip().split(" ")[0] in ADMONITIONS:
            found += uses(token.content, line + 1)  # prose in a box is prose
        if token.type != "inline" or in_heading:
            continue
        # The inline's prose as one string (inline code and link text blanked out), with the line of each
        # character, and the glossary links it holds.
        prose: list[str] = []
        lines: list[int] = []
        links: list[tuple[int, Use]] = []
        at = line
        in_link = False
        for child in token.children or []:
            if child.type in ("softbreak", "hardbreak"):
                prose.append(" ")
                lines.append(at)
                at += 1
            elif child.type == "link_open":
                in_link = True
                entry = href_target(str(child.attrs.get("href", "")))
                if entry:
                    links.append((len(prose), Use(at, entry, "", True)))
            elif child.type == "link_close":
                in_link = False
                prose.append(GAP)
                lines.append(at)
            elif child.type == "myst_role":
                entry = role_target(child.content) if child.meta.get("name") == "term" else None
                if entry:
                    links.append((len(prose), Use(at, entry, child.content, True)))
                prose.append(GAP)
                lines.append(at)
            elif child.type in ("em_open", "em_close", "strong_open", "strong_close"):
                pass
            elif child.type == "text" and not in_link:
                prose.extend(child.content)
                lines.extend([at] * len(child.content))
            else:
                prose.append(GAP)
                lines.append(at)
        events = list(links)
        for match in pattern.finditer("".join(prose)):
            term = term_of(match[0])
            if term not in NOT_CHECKED:
                events.append((match.start(), Use(lines[match.start()], terms[term], match[0], False)))
        found += [use for _, use in sorted(events, key=lambda event: event[0])]
    return found


def unlinked_first_uses(text: str) -> list[Use]:
    """For each entry the page uses, its first use, where that use is not a link to it."""
    first: dict[str, Use] = {}
    for use in uses(text):
        first.setdefault(use.entry, use)
    return [use for use in first.values() if not use.linked]


def test_every_guide_links_each_glossary_term_at_its_first_use():
    terms = glossary()
    assert {"trinity id": "Trinity ID", "steady state": "steady state", "steady-state hypothesis": "steady state",
            "@given": "@given", "stale": "stale"}.items() <= terms.items(), "the glossary's terms were not read"
    pages = guides()
    assert DOCS / "testing" / "CHAOS_ENGINEERING.md" in pages and DOCS / "glossary.md" not in pages
    # The check itself: an unlinked first use is found, with its line; a link before it (any form) covers it.
    page = ("# The branch\n\nA branch\nhead moves; the `branch` and\n\n```text\ndrift\n```\n\nthe branches.\n\n"
            "A killed server, a surviving mutant.\n\n```{note}\nOn drift.\n```\n")
    assert [(use.line, use.entry, use.text) for use in unlinked_first_uses(page)] == [
        (3, "branch head", "branch head"), (10, "branch", "branches"), (12, "killed", "surviving mutant"),
        (15, "drift", "drift")]
    assert unlinked_first_uses("{term}`Branches <branch>` and\nthe branch.\n") == []
    assert unlinked_first_uses("[the branch](https://example.org) and a {term}`branch`.\n") == []
    assert sorted(set(NOT_CHECKED) - set(terms)) == [], "an excluded term is no longer in the glossary"
    # The glossary's opening names some of the exceptions, in italics: they must be exceptions here.
    named = re.findall(r"\*([^*]+)\*", GLOSSARY.read_text(encoding="utf-8").split("\n\n")[1])
    assert named and set(named) <= set(NOT_CHECKED), f"the glossary names {named} as not checked"

    missing = [f"{page.relative_to(DOCS.parent)}:{use.line}: {use.text!r} ({{term}}`{use.entry}`)"
               for page in pages for use in unlinked_first_uses(page.read_text(encoding="utf-8"))]
    assert not missing, "a glossary term's first use on a guide is not a link to the glossary:\n" + "\n".join(missing)
