"""MkDocs hooks: the pages generated from the code at build time, so that they cannot drift.

``mkdocs.yml`` names this file under ``hooks:``. A page holds a marker comment where the
generated text goes:

- ``<!-- generated: settings -->``: every ``WFA_*`` variable of
  :class:`wfa_keys.settings.Settings`, its default, range and meaning (the ``#:`` comment
  above the field in ``src/wfa_keys/settings.py``);
- ``<!-- generated: graphql-reference -->``: every query, mutation, type, input and enum of the
  committed ``schema.graphql`` (itself pinned to the code by
  ``tests/service/graphql/test_schema.py``).

``tests/test_docs.py`` renders both and checks them against the code.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_SOURCE = ROOT / "src" / "wfa_keys" / "settings.py"
SCHEMA = ROOT / "schema.graphql"
SETTINGS_MARKER = "<!-- generated: settings -->"
GRAPHQL_MARKER = "<!-- generated: graphql-reference -->"


def on_page_markdown(markdown: str, **_kwargs: Any) -> str:
    """MkDocs hook: replace the markers of a page with their generated text."""
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_table())
    if GRAPHQL_MARKER in markdown:
        markdown = markdown.replace(GRAPHQL_MARKER, graphql_reference())
    return markdown


# ------------------------------------------------------------------ settings


def field_docs(source: Path = SETTINGS_SOURCE) -> dict[str, str]:
    """Each Settings field's meaning: the ``#:`` comment lines right above it."""
    lines = source.read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines))
    docs: dict[str, str] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and node.name == "Settings"):
            continue
        for statement in node.body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                comment: list[str] = []
                index = statement.lineno - 2
                while index >= 0 and lines[index].strip().startswith("#"):
                    text = lines[index].strip()
                    if text.startswith("#:"):
                        comment.insert(0, text[2:].strip())
                    index -= 1
                docs[statement.target.id] = " ".join(comment)
    return docs


def _default(field: dataclasses.Field[Any]) -> str:
    value = field.default
    if isinstance(value, bool):
        shown = "on" if value else "off"
    elif value is None or value in ((), ""):
        return "none"
    else:
        shown = str(value)
    return f"`{shown}`"


def settings_rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting, in the order of the class."""
    from wfa_keys.settings import Settings

    docs = field_docs()
    rows = []
    for field in dataclasses.fields(Settings):
        default = _default(field)
        if "range" in field.metadata:
            low, high = field.metadata["range"]
            default += f" ({low} to {high})"
        rows.append((field.metadata["env"], default, docs.get(field.name, "")))
    return rows


def settings_table() -> str:
    """The Markdown table of every ``WFA_*`` setting."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, default, meaning in settings_rows():
        lines.append(f"| `{name}` | {default} | {_cell(meaning)} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# ------------------------------------------------------------------ GraphQL


def graphql_reference(sdl: str | None = None) -> str:
    """Markdown of every operation and type of ``schema.graphql``."""
    from graphql import (
        GraphQLEnumType,
        GraphQLInputObjectType,
        GraphQLObjectType,
        GraphQLScalarType,
        build_schema,
    )

    schema = build_schema(sdl if sdl is not None else SCHEMA.read_text(encoding="utf-8"))
    out: list[str] = []
    roots = [("Queries", schema.query_type), ("Mutations", schema.mutation_type)]
    for title, root in roots:
        if root is None:
            continue
        out += [f"## {title}", ""]
        for name, field in root.fields.items():
            out += [f"### `{name}`", "", "```graphql", _signature(name, field), "```", ""]
            if field.description:
                out += [field.description, ""]
            if field.deprecation_reason:
                out += [f"*Deprecated:* {field.deprecation_reason}", ""]
            if field.args:
                described = any(arg.description for arg in field.args.values())
                out += (
                    ["| argument | type | meaning |", "| --- | --- | --- |"]
                    if described
                    else ["| argument | type |", "| --- | --- |"]
                )
                for arg_name, arg in field.args.items():
                    meaning = f" {_cell(arg.description or '')} |" if described else ""
                    out.append(f"| `{arg_name}` | `{arg.type}` |{meaning}")
                out.append("")
    named = sorted(
        (t for n, t in schema.type_map.items() if not n.startswith("__")),
        key=lambda t: t.name,
    )
    skip = {root.name for _, root in roots if root is not None}
    out += ["## Types", ""]
    for graphql_type in named:
        if graphql_type.name in skip:
            continue
        if isinstance(graphql_type, GraphQLScalarType) and graphql_type.name in {
            "String", "Int", "Float", "Boolean", "ID",
        }:  # fmt: skip
            continue
        kind = {
            GraphQLObjectType: "type",
            GraphQLInputObjectType: "input",
            GraphQLEnumType: "enum",
            GraphQLScalarType: "scalar",
        }.get(type(graphql_type), "type")
        out += [f"### `{graphql_type.name}` ({kind})", ""]
        if graphql_type.description:
            out += [graphql_type.description, ""]
        if isinstance(graphql_type, GraphQLEnumType):
            out += ["| value | meaning |", "| --- | --- |"]
            for value_name, value in graphql_type.values.items():
                out.append(f"| `{value_name}` | {_cell(value.description or '')} |")
            out.append("")
        elif isinstance(graphql_type, GraphQLObjectType | GraphQLInputObjectType):
            out += ["| field | type | meaning |", "| --- | --- | --- |"]
            for field_name, member in graphql_type.fields.items():
                out.append(
                    f"| `{field_name}` | `{member.type}` | {_cell(member.description or '')} |"
                )
            out.append("")
    return "\n".join(out)


def _signature(name: str, field: Any) -> str:
    if not field.args:
        return f"{name}: {field.type}"
    args = ", ".join(f"{arg_name}: {arg.type}" for arg_name, arg in field.args.items())
    return f"{name}({args}): {field.type}"
