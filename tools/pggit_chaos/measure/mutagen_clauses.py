"""The generator's clause and DDL operators (ORDER BY, COLLATE, UNION, exception handlers, ERRCODE, SET, SECURITY DEFINER, GRANT, REVOKE), and the registry of every operator.

Each operator, like those of ``mutagen_rules.py``, takes a ``mutagen.Unit``
and yields ``(start, end, replacement)`` edits; its docstring's first
sentence is its documented rule, which ``pggit-chaos mutants-generate
--operators`` prints and the Metrics page lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pggit_chaos.measure import mutagen_rules as rules
from pggit_chaos.measure.mutagen import Unit

Edit = rules.Edit
_ORDER_BY_END = {"LIMIT", "OFFSET", "FOR", "ASCII_59", "UNION", "EXCEPT", "INTERSECT", "INTO", "RETURNING", "FETCH",
                 "WINDOW", "THEN", "WHEN", "ELSE", "END_P"}


def remove_order_by(unit: Unit) -> Iterator[Edit]:
    """remove-order-by: an ORDER BY clause (of a query, an aggregate or a window) is removed, up to LIMIT, FOR, a closing parenthesis or the end of the statement."""
    toks = unit.tokens
    for i, t in enumerate(toks):
        if t.name != "ORDER" or rules._i(unit, i + 1) is None or toks[i + 1].name != "BY":
            continue
        j = i + 1
        while (k := j + 1) < len(toks) and unit.depth[k] >= unit.depth[i] and not (
                unit.depth[k] == unit.depth[i] and (toks[k].name in _ORDER_BY_END or toks[k].word == "LOOP")):
            j = k
        if j > i + 1:
            yield t.start, toks[j].end, ""


def remove_collate(unit: Unit) -> Iterator[Edit]:
    """remove-collate: a COLLATE clause is removed, so the comparison or sort follows the database's collation."""
    toks = unit.tokens
    for i, t in enumerate(toks):
        if t.name == "COLLATE" and i + 1 < len(toks):
            last = i + 1
            while last + 2 < len(toks) and toks[last + 1].name == "ASCII_46":
                last += 2
            yield t.start, toks[last].end, ""


def union_swap(unit: Unit) -> Iterator[Edit]:
    """union-swap: UNION becomes UNION ALL (duplicates kept) and UNION ALL becomes UNION (duplicates removed)."""
    toks = unit.tokens
    for i, t in enumerate(toks):
        if t.name == "UNION":
            nxt = rules._i(unit, i + 1)
            if nxt is not None and nxt.name == "ALL":
                yield t.start, nxt.end, "UNION"
            else:
                yield t.start, t.end, "UNION ALL"


def remove_exception_handler(unit: Unit) -> Iterator[Edit]:
    """remove-exception-handler: a block's only exception handler is removed with its EXCEPTION section; of several, one WHEN ... THEN handler is removed."""
    if unit.kind != "body" or unit.language != "plpgsql":
        return
    toks = unit.tokens
    for i, t in enumerate(toks):
        if t.word != "EXCEPTION" or t.name != "IDENT" or (i and toks[i - 1].word == "RAISE"):
            continue
        block = next((b for b in range(i - 1, -1, -1) if toks[b].name == "BEGIN_P"
                      and unit.depth[b] == unit.depth[i] - 1 and unit.closer.get(b, -1) > i), None)
        if block is None:
            continue
        end = unit.closer[block]
        handlers = [k for k in range(i + 1, end) if toks[k].name == "WHEN" and unit.depth[k] == unit.depth[i]]
        if len(handlers) <= 1:
            yield t.start, toks[end - 1].end, ""
            continue
        for n, k in enumerate(handlers):
            last = handlers[n + 1] - 1 if n + 1 < len(handlers) else end - 1
            yield toks[k].start, toks[last].end, ""


def errcode_change(unit: Unit) -> Iterator[Edit]:
    """errcode-change: an error code a body raises or catches (ERRCODE = '...' with a code or a condition name, SQLSTATE '...') becomes another: P0001 (raise_exception), or 22023 where it was P0001."""
    if unit.kind != "body":
        return
    toks = unit.tokens
    for i, t in enumerate(toks):
        if t.name != "SCONST" or i < 1:
            continue
        by_errcode = i >= 2 and toks[i - 1].name == "ASCII_61" and toks[i - 2].word == "ERRCODE"
        if by_errcode or toks[i - 1].word == "SQLSTATE":
            code = t.text.strip("'").upper()
            yield t.start, t.end, "'22023'" if code in ("P0001", "RAISE_EXCEPTION") else "'P0001'"


def remove_set_option(unit: Unit) -> Iterator[Edit]:
    """remove-set-option: a function's SET option (search_path, standard_conforming_strings, ...) is removed, and so is a SET statement of the script."""
    toks = unit.tokens
    if unit.kind == "script" and type(unit.stmt).__name__ == "VariableSetStmt":
        yield toks[0].start, toks[-1].end, ""
    if unit.kind != "header":
        return
    for i, t in enumerate(toks):
        if t.name != "SET" or i + 2 >= len(toks):
            continue
        j = i + 2
        if toks[j].name == "CURRENT_P":  # SET x FROM CURRENT
            yield t.start, toks[j].end, ""
            continue
        j += 1  # the first value
        while j + 2 < len(toks) and toks[j + 1].name == "ASCII_44":
            j += 2
        yield t.start, toks[min(j, len(toks) - 1)].end, ""


def drop_security_definer(unit: Unit) -> Iterator[Edit]:
    """drop-security-definer: SECURITY DEFINER is removed, so the function runs with its caller's privileges."""
    toks = unit.tokens
    if unit.kind == "header":
        for i, t in enumerate(toks[:-1]):
            if t.name == "SECURITY" and toks[i + 1].name == "DEFINER":
                yield t.start, toks[i + 1].end, ""


def add_security_definer(unit: Unit) -> Iterator[Edit]:
    """add-security-definer: a function without SECURITY DEFINER gets one, so it runs with its owner's privileges."""
    toks = unit.tokens
    if unit.kind == "header" and not any(t.name == "SECURITY" for t in toks) and toks[-1].name == "AS":
        yield toks[-1].start, toks[-1].end, "SECURITY DEFINER AS"


def drop_grant(unit: Unit) -> Iterator[Edit]:
    """drop-grant: a GRANT statement of the script is dropped."""
    if unit.kind == "script" and type(unit.stmt).__name__ == "GrantStmt" and unit.stmt.is_grant:
        yield unit.tokens[0].start, unit.tokens[-1].end, ""


def drop_revoke(unit: Unit) -> Iterator[Edit]:
    """drop-revoke: a REVOKE statement of the script is dropped."""
    if unit.kind == "script" and type(unit.stmt).__name__ == "GrantStmt" and not unit.stmt.is_grant:
        yield unit.tokens[0].start, unit.tokens[-1].end, ""


OPERATORS: dict[str, Callable[[Unit], Iterator[Edit]]] = {
    **rules.OPERATORS,
    "remove-order-by": remove_order_by,
    "remove-collate": remove_collate,
    "union-swap": union_swap,
    "remove-exception-handler": remove_exception_handler,
    "errcode-change": errcode_change,
    "remove-set-option": remove_set_option,
    "drop-security-definer": drop_security_definer,
    "add-security-definer": add_security_definer,
    "drop-grant": drop_grant,
    "drop-revoke": drop_revoke,
}


def rule(name: str) -> str:
    """The documented rule of operator ``name``: its docstring after the name."""
    return OPERATORS[name].__doc__.split(":", 1)[1].strip()
