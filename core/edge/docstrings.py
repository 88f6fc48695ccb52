"""Docstrings as API documentation: what a Python author writes becomes what a client reads.

- :func:`markdown` turns the reST inline markup of docstrings into the CommonMark that OpenAPI
  and AsyncAPI descriptions use: ````code```` -> ```code```, ``:class:`~pkg.Name``` ->
  ```Name```, ``:ref:`text <target>``` -> ```text```; nothing raw leaks into a summary.
- :func:`field_docs` reads the documentation of a class's fields from its source, in the two
  forms Python authors write: a ``#:`` comment above the field (Sphinx) and a string literal
  below it (an attribute docstring). ``Field(description=...)`` needs neither.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from functools import cache

__all__ = ["field_docs", "markdown"]

_LITERAL = re.compile(r"``(.+?)``")
_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`(~?)([^`<]+?)(?:\s*<[^`>]+>)?`")


def _role(match: re.Match[str]) -> str:
    tilde, target = match[1], match[2].strip()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def markdown(text: str) -> str:
    """``text`` with reST inline literals and roles written as CommonMark code spans."""
    return _ROLE.sub(_role, _LITERAL.sub(r"`\1`", text))


@cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field: documentation}`` from ``#:`` comments and attribute docstrings in ``cls``'s
    own body (as Markdown, one paragraph); ``{}`` when its source cannot be read."""
    try:
        lines, _ = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    source = textwrap.dedent("".join(lines))
    try:
        body = ast.parse(source).body[0]
    except (SyntaxError, IndexError):
        return {}
    if not isinstance(body, ast.ClassDef):
        return {}
    text = source.splitlines()
    docs: dict[str, str] = {}
    statements = body.body
    for index, statement in enumerate(statements):
        name = _assigned(statement)
        if name is None:
            continue
        comments = _comments_above(text, statement.lineno - 1)
        following = statements[index + 1] if index + 1 < len(statements) else None
        docstring = _string(following)
        found = docstring if docstring is not None else comments
        if found:
            docs[name] = markdown(" ".join(found.split()))
    return docs


def _assigned(statement: ast.stmt) -> str | None:
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return statement.target.id
    return None


def _comments_above(text: list[str], line: int) -> str:
    found: list[str] = []
    for row in reversed(text[:line]):
        stripped = row.strip()
        if not stripped.startswith("#:"):
            break
        found.append(stripped[2:].strip())
    return " ".join(reversed(found))


def _string(statement: ast.stmt | None) -> str | None:
    if (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    ):
        return inspect.cleandoc(statement.value.value)
    return None
