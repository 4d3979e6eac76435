"""The mutation operators of the generator: each a named rule over one unit's tokens, documented by its docstring.

An operator takes a ``mutagen.Unit`` (a function's body, its header, or a
top-level statement of the script) and yields ``(start, end, replacement)``
edits at byte offsets of the script. A rule may propose an edit that does
not install (``UPDATE t SET a <> 1``); the install check reports such a
mutant as stillborn instead of counting it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pggit_chaos.measure.mutagen import Tok, Unit

Edit = tuple[int, int, str]

_COMPARISON = {"ASCII_61": "<>", "NOT_EQUALS": "=", "ASCII_60": "<=", "LESS_EQUALS": "<",
               "ASCII_62": ">=", "GREATER_EQUALS": ">"}
# Where one condition ends and the next clause (or statement) begins, at the condition's own depth.
_CLAUSE_END = {"AND", "OR", "THEN", "LOOP", "ORDER", "GROUP_P", "HAVING", "LIMIT", "OFFSET", "FOR", "RETURNING",
               "UNION", "EXCEPT", "INTERSECT", "WINDOW", "INTO", "ASCII_59", "ASCII_44", "WHEN", "ELSE", "WHERE",
               "ON", "JOIN", "FROM", "SELECT", "SET", "USING", "COLON_EQUALS", "IF_P", "WHILE", "END_P", "DO"}
_CLAUSE_END_WORDS = {"RETURN", "ELSIF", "ELSEIF", "EXIT", "CONTINUE", "PERFORM", "LOOP", "WHILE"}
# PL/pgSQL statements a rule may replace by NULL (the no-op statement): the simple ones, not IF, LOOP or blocks.
_SIMPLE = {"execsql", "perform", "assign", "dynexecute", "raise", "return", "return_next", "return_query",
           "getdiag", "call", "assert"}
_BOUNDARY = {"ASCII_59", "THEN", "ELSE", "BEGIN_P", "DECLARE"}


def _i(unit: Unit, i: int) -> Tok | None:
    return unit.tokens[i] if 0 <= i < len(unit.tokens) else None


def _stop(t: Tok) -> bool:
    return t.name in _CLAUSE_END or (t.name == "IDENT" and t.word in _CLAUSE_END_WORDS)


def _extent(unit: Unit, i: int, step: int) -> int:
    """From token ``i``, the last token in direction ``step`` that still belongs to the same condition or clause."""
    d, j = unit.depth[i], i
    while (k := j + step) >= 0 and k < len(unit.tokens):
        t = unit.tokens[k]
        if unit.depth[k] < d or (unit.depth[k] == d and _stop(t)
                                 and not (t.name == "FROM" and unit.tokens[k - 1].name == "DISTINCT")):
            break
        j = k
    return j


def _in_between(unit: Unit, i: int) -> bool:
    """Whether the AND at ``i`` is BETWEEN's (x BETWEEN a AND b)."""
    for k in range(i - 1, max(-1, i - 8), -1):
        t = unit.tokens[k]
        if unit.depth[k] == unit.depth[i] and (t.name in ("BETWEEN", "AND", "OR") or _stop(t)):
            return t.name == "BETWEEN"
    return False


def _assignment_equals(unit: Unit, i: int) -> bool:
    """Whether the ``=`` at ``i`` assigns (UPDATE ... SET, SET x =, DECLARE, v = ..., USING ERRCODE =, GET DIAGNOSTICS)."""
    toks = unit.tokens
    for k in range(i - 1, -1, -1):
        t = toks[k]
        if unit.depth[k] < unit.depth[i]:
            return False
        if unit.depth[k] > unit.depth[i]:
            continue
        if t.name in ("SET", "DECLARE", "USING") or t.word == "DIAGNOSTICS":
            return True
        if t.name in ("WHERE", "ON", "WHEN", "IF_P", "ASCII_59", "THEN", "BEGIN_P", "ELSE", "RETURNING", "SELECT",
                      "HAVING", "COLON_EQUALS") or t.word in _CLAUSE_END_WORDS:
            # "v = expr;" right after a statement boundary is PL/pgSQL's assignment.
            return t.name in _BOUNDARY and k == i - 2
    return unit.kind == "body" and i == 1


def comparison_swap(unit: Unit) -> Iterator[Edit]:
    """comparison-swap: one comparison operator becomes its neighbour: = and <> swap, < becomes <=, <= becomes <, > becomes >=, >= becomes >. An ``=`` that assigns is left alone."""
    if unit.kind == "header":
        return
    for i, t in enumerate(unit.tokens):
        if t.name in _COMPARISON and not (t.name == "ASCII_61" and _assignment_equals(unit, i)):
            yield t.start, t.end, _COMPARISON[t.name]


def boolean_swap(unit: Unit) -> Iterator[Edit]:
    """boolean-swap: AND becomes OR, OR becomes AND, true becomes false and false true (BETWEEN's AND and OR REPLACE are left alone)."""
    if unit.kind == "header":
        return
    for i, t in enumerate(unit.tokens):
        nxt = _i(unit, i + 1)
        if t.name == "AND" and not _in_between(unit, i):
            yield t.start, t.end, "OR"
        elif t.name == "OR" and not (nxt and nxt.name == "REPLACE"):
            yield t.start, t.end, "AND"
        elif t.name in ("TRUE_P", "FALSE_P"):
            yield t.start, t.end, "false" if t.name == "TRUE_P" else "true"


def drop_conjunct(unit: Unit) -> Iterator[Edit]:
    """drop-conjunct: one operand of an AND in a WHERE, ON, IF or WHEN condition is dropped: the one after each AND, and the first of a chain."""
    if unit.kind == "header":
        return
    toks = unit.tokens
    for i, t in enumerate(toks):
        if t.name != "AND" or _in_between(unit, i):
            continue
        right = _extent(unit, i, +1)
        if right > i:
            yield t.start, toks[right].end, ""
        left = _extent(unit, i, -1)
        before = _i(unit, left - 1)
        if left < i and not (before and before.name in ("AND", "OR") and unit.depth[left - 1] == unit.depth[i]):
            yield toks[left].start, toks[i + 1].start, ""


_LOCK_STRENGTH = {"UPDATE": "SHARE", "SHARE": "UPDATE", "NO": "KEY SHARE", "KEY": "NO KEY UPDATE"}


def _row_locks(unit: Unit) -> Iterator[tuple[int, int, int]]:
    """Each FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE clause: (FOR, last strength token, clause end)."""
    toks = unit.tokens
    for i, t in enumerate(toks):
        nxt = _i(unit, i + 1)
        if t.name != "FOR" or nxt is None or nxt.name not in ("UPDATE", "SHARE", "NO", "KEY"):
            continue
        strength = i + (3 if nxt.name == "NO" else 2 if nxt.name == "KEY" else 1)
        end = strength
        while (n := _i(unit, end + 1)) is not None and n.name not in ("ASCII_59", "ASCII_41", "FOR") \
                and not (n.name == "IDENT" and n.word in ("LOOP",)) and n.name in ("OF", "IDENT", "ASCII_44", "ASCII_46",
                                                                                   "NOWAIT", "SKIP", "LOCKED"):
            end += 1
        yield i, strength, end


def _advisory_calls(unit: Unit) -> Iterator[tuple[int, int, Tok]]:
    """Each call of an advisory-lock function: (first token, last token, the name token)."""
    toks = unit.tokens
    for i, t in enumerate(toks):
        if t.name == "IDENT" and t.text.lower().startswith(("pg_advisory", "pg_try_advisory")) \
                and "unlock" not in t.text.lower() and (n := _i(unit, i + 1)) and n.name == "ASCII_40":
            first = i - 2 if i >= 2 and toks[i - 1].name == "ASCII_46" else i
            yield first, unit.closer.get(i + 1, i + 1), t


def remove_lock(unit: Unit) -> Iterator[Edit]:
    """remove-lock: a row lock clause (FOR UPDATE, FOR SHARE, with OF, NOWAIT or SKIP LOCKED) is removed; an advisory-lock call becomes NULL (a pg_try_ one true); a LOCK TABLE statement becomes NULL."""
    toks = unit.tokens
    for i, _, end in _row_locks(unit):
        yield toks[i].start, toks[end].end, ""
    for first, last, name in _advisory_calls(unit):
        yield toks[first].start, toks[last].end, "true" if name.text.lower().startswith("pg_try") else "NULL"
    if unit.kind == "body" and unit.language == "plpgsql":
        for i, t in enumerate(toks):
            if t.name == "LOCK_P" and (_i(unit, i - 1) is None or toks[i - 1].name in _BOUNDARY):
                end = next((k for k in range(i, len(toks)) if toks[k].name == "ASCII_59"), None)
                if end is not None:
                    yield t.start, toks[end - 1].end, "NULL"


def lock_strength(unit: Unit) -> Iterator[Edit]:
    """lock-strength: a row lock changes strength (FOR UPDATE and FOR SHARE swap, NO KEY UPDATE becomes KEY SHARE and back); an advisory lock becomes shared, a shared one exclusive; LOCK TABLE's mode becomes ACCESS SHARE (or ACCESS EXCLUSIVE)."""
    toks = unit.tokens
    for i, strength, _ in _row_locks(unit):
        yield toks[i + 1].start, toks[strength].end, _LOCK_STRENGTH[toks[i + 1].name]
    for _, _, name in _advisory_calls(unit):
        text = name.text
        yield name.start, name.end, text[:-len("_shared")] if text.lower().endswith("_shared") else text + "_shared"
    for i, t in enumerate(toks):
        if t.name == "LOCK_P":
            mode = next((k for k in range(i, len(toks)) if toks[k].name in ("IN_P", "ASCII_59")), None)
            if mode is not None and toks[mode].name == "IN_P":
                last = next(k for k in range(mode, len(toks)) if toks[k].name == "MODE")
                words = " ".join(x.word for x in toks[mode + 1:last])
                yield toks[mode + 1].start, toks[last - 1].end, \
                    "ACCESS EXCLUSIVE" if words == "ACCESS SHARE" else "ACCESS SHARE"


def off_by_one(unit: Unit) -> Iterator[Edit]:
    """off-by-one: an integer literal n becomes n + 1 and n - 1 (not below 0): LIMIT, OFFSET, lengths, positions, counts, sequence options."""
    if unit.kind == "header":
        return
    toks = unit.tokens
    for i, t in enumerate(toks):
        # SELECT 1 of an EXISTS, and a type's length or precision, change nothing a test could see.
        if i and (toks[i - 1].name == "SELECT" or (toks[i - 1].name in ("ASCII_40", "ASCII_44") and i > 1
                                                   and toks[i - 2].name in ("VARCHAR", "NUMERIC", "CHARACTER",
                                                                            "ASCII_44", "BIT", "DECIMAL_P")
                                                   and toks[i - 1].name == "ASCII_40")):
            continue
        if t.name == "ICONST" and t.text.isdigit():
            n = int(t.text)
            yield t.start, t.end, str(n + 1)
            if n > 0:
                yield t.start, t.end, str(n - 1)


def _returns(unit: Unit) -> Iterator[tuple[int, int]]:
    """Each ``RETURN expr;`` of a PL/pgSQL body: (index of the expression's first token, index of the ``;``)."""
    toks = unit.tokens
    if unit.kind != "body" or unit.language != "plpgsql":
        return
    for i, t in enumerate(toks):
        nxt = _i(unit, i + 1)
        if t.word == "RETURN" and nxt is not None and nxt.name != "ASCII_59" \
                and nxt.word not in ("NEXT", "QUERY") and (i == 0 or toks[i - 1].name in _BOUNDARY):
            end = next((k for k in range(i, len(toks)) if toks[k].name == "ASCII_59" and unit.depth[k] == unit.depth[i]),
                       None)
            if end is not None:
                yield i + 1, end


def result_null(unit: Unit) -> Iterator[Edit]:
    """result-null: the expression of a PL/pgSQL ``RETURN expr`` becomes NULL (a trigger's RETURN NEW too: the row is skipped)."""
    toks = unit.tokens
    for first, semi in _returns(unit):
        if not (semi == first + 1 and toks[first].name == "NULL_P"):
            yield toks[first].start, toks[semi - 1].end, "NULL"


_CONSTANTS = {"boolean": ("true", "false"), "bool": ("true", "false"), "integer": ("0",), "int": ("0",),
              "bigint": ("0",), "int4": ("0",), "int8": ("0",), "text": ("''",)}


def result_constant(unit: Unit) -> Iterator[Edit]:
    """result-constant: the expression of a PL/pgSQL ``RETURN expr`` becomes a constant of the function's type: true and false, 0, or the empty string."""
    toks = unit.tokens
    kind = unit.returns.lower().removeprefix("pg_catalog.")
    for first, semi in _returns(unit):
        text = " ".join(t.text for t in toks[first:semi]).lower()
        for constant in _CONSTANTS.get(kind, ()):
            if text != constant:
                yield toks[first].start, toks[semi - 1].end, constant


def result_empty(unit: Unit) -> Iterator[Edit]:
    """result-empty: a set-returning PL/pgSQL function's RETURN QUERY or RETURN NEXT becomes NULL (fewer rows); an SQL function's whole body becomes the do-nothing body of the hollow build (NULL or no rows)."""
    from pggit_chaos.measure.hollow import HollowError, hollow_body

    toks = unit.tokens
    if unit.kind != "body":
        return
    if unit.language == "sql":
        try:
            yield toks[0].start, toks[-1].end, hollow_body(unit.stmt)[2]
        except HollowError:
            pass
        return
    for i, t in enumerate(toks):
        nxt = _i(unit, i + 1)
        if t.word == "RETURN" and nxt is not None and nxt.word in ("NEXT", "QUERY"):
            end = next((k for k in range(i, len(toks)) if toks[k].name == "ASCII_59" and unit.depth[k] == unit.depth[i]),
                       None)
            if end is not None:
                yield t.start, toks[end - 1].end, "NULL"


def delete_statement(unit: Unit) -> Iterator[Edit]:
    """delete-statement: one simple statement of a PL/pgSQL body (SQL, PERFORM, assignment, EXECUTE, RAISE above LOG, RETURN, GET DIAGNOSTICS) becomes NULL, the no-op statement."""
    if unit.kind != "body" or unit.language != "plpgsql":
        return
    toks = unit.tokens
    lines = sorted({line for kind, line in unit.plpgsql if kind in _SIMPLE})
    for line in lines:
        # The statement opens at the first token of its line that follows a statement boundary.
        for i, t in enumerate(toks):
            if t.line != line:
                continue
            prev = toks[i - 1] if i else None
            if prev is not None and prev.name not in _BOUNDARY and prev.word != "LOOP":
                continue
            if t.name == "NULL_P" or (prev is not None and prev.name == "DECLARE") \
                    or (t.word == "RAISE" and (n := _i(unit, i + 1)) and n.word in ("DEBUG", "LOG")):
                break
            end = next((k for k in range(i, len(toks)) if toks[k].name == "ASCII_59" and unit.depth[k] == unit.depth[i]),
                       None)
            if end is not None and end > i:
                yield t.start, toks[end - 1].end, "NULL"
            break


OPERATORS: dict[str, Callable[[Unit], Iterator[Edit]]] = {
    "comparison-swap": comparison_swap,
    "boolean-swap": boolean_swap,
    "drop-conjunct": drop_conjunct,
    "remove-lock": remove_lock,
    "lock-strength": lock_strength,
    "off-by-one": off_by_one,
    "result-null": result_null,
    "result-constant": result_constant,
    "result-empty": result_empty,
    "delete-statement": delete_statement,
}
