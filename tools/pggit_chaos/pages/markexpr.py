"""Marker expressions as ``pytest -m`` reads them: marker names joined by and, or, not and parentheses.

A small parser of the project's own, so the shell-block checks can tell which
markers an expression names and whether it selects a test, without pytest's
private expression module. The grammar is pytest's, less keyword arguments::

    expression: expr? EOF
    expr:       and_expr ('or' and_expr)*
    and_expr:   not_expr ('and' not_expr)*
    not_expr:   'not' not_expr | '(' expr ')' | name
"""

from __future__ import annotations

import re
from collections.abc import Callable, Set
from dataclasses import dataclass

# pytest's own identifier characters, so every name it accepts is read as one name here too.
_TOKEN = re.compile(r"\s*(?:(?P<paren>[()])|(?P<name>[\w:+\-.\[\]\\/]+)|(?P<bad>\S))")
_KEYWORDS = {"and", "or", "not"}

Matcher = Callable[[Set[str]], bool]


class MarkerExpressionError(ValueError):
    """An expression pytest's -m would refuse; the message quotes it."""


@dataclass(frozen=True)
class MarkerExpression:
    """A parsed -m expression: the marker names it uses, and a test for a set of marks."""

    text: str
    names: frozenset[str]
    _matcher: Matcher

    def matches(self, marks: Set[str]) -> bool:
        """Would ``-m`` select a test carrying these marker names?"""
        return self._matcher(marks)


def parse(text: str) -> MarkerExpression:
    """Parse a -m expression; MarkerExpressionError names the expression and the column at fault."""
    return _Parser(text).expression()


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, int]] = []  # (token, column)
        for match in _TOKEN.finditer(text):
            if match.group("bad"):
                self.fail(f"unexpected character {match.group('bad')!r}", match.start("bad"))
            kind = "paren" if match.group("paren") else "name"
            self.tokens.append((match.group(kind), match.start(kind)))
        self.pos = 0
        self.names: set[str] = set()

    def fail(self, what: str, column: int) -> None:
        raise MarkerExpressionError(f"-m {self.text!r}: {what} at column {column + 1}")

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        if self.pos >= len(self.tokens):
            self.fail(f"expected {repr(expected) if expected else 'a marker name'}, got the end", len(self.text))
        token, column = self.tokens[self.pos]
        if expected is not None and token != expected:
            self.fail(f"expected {expected!r}, got {token!r}", column)
        self.pos += 1
        return token

    def expression(self) -> MarkerExpression:
        if self.peek() is None:
            # An empty expression selects everything, as with pytest.
            return MarkerExpression(self.text, frozenset(), lambda marks: True)
        matcher = self.or_expr()
        if self.pos < len(self.tokens):
            token, column = self.tokens[self.pos]
            self.fail(f"unexpected {token!r}", column)
        return MarkerExpression(self.text, frozenset(self.names), matcher)

    def or_expr(self) -> Matcher:
        terms = [self.and_expr()]
        while self.peek() == "or":
            self.take("or")
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else (lambda marks: any(t(marks) for t in terms))

    def and_expr(self) -> Matcher:
        terms = [self.not_expr()]
        while self.peek() == "and":
            self.take("and")
            terms.append(self.not_expr())
        return terms[0] if len(terms) == 1 else (lambda marks: all(t(marks) for t in terms))

    def not_expr(self) -> Matcher:
        token = self.peek()
        if token == "not":
            self.take("not")
            inner = self.not_expr()
            return lambda marks: not inner(marks)
        if token == "(":
            self.take("(")
            inner = self.or_expr()
            self.take(")")
            return inner
        column = self.tokens[self.pos][1] if token is not None else len(self.text)
        name = self.take()
        if name in _KEYWORDS or name == ")":
            self.fail(f"expected a marker name, got {name!r}", column)
        if self.peek() == "(":
            self.fail(f"marker arguments ({name}(...)) are not supported here", self.tokens[self.pos][1])
        self.names.add(name)
        return lambda marks: name in marks
