"""The documentation says what the code does: its variables, flags and generated pages.

Every ``docs/*.md`` page is scanned (new pages included) with the README, plus the pages
``docs/hooks.py`` generates when the site is built (the settings table and the GraphQL
reference).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from graphql import build_schema

from wfa_keys.cli import build_parser
from wfa_keys.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
VARIABLE = re.compile(r"\bWFA_[A-Z0-9_]*[A-Z0-9]\b")
QUOTED_VARIABLE = re.compile(r"""["'](WFA_[A-Z0-9_]*[A-Z0-9])["']""")
# A command and the rest of its line, up to a code span's or a table cell's end (a table
# cell writes a pipe inside it as \|).
COMMAND = re.compile(r"wfa-keys ([a-z][a-z-]*)((?:\\\||[^`|\n])*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hooks() -> ModuleType:
    return load_hooks()


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documentation(hooks: ModuleType) -> str:
    """Every page as the site shows it: the markers replaced with their generated text."""
    return "\n".join(
        hooks.on_page_markdown(page.read_text(encoding="utf-8"), page=None) for page in pages()
    )


def settings_variables() -> set[str]:
    return {field.metadata["env"] for field in dataclasses.fields(Settings)}


def variables_read_by(folder: str) -> set[str]:
    """The ``WFA_*`` names a folder's Python code writes as strings (and so reads)."""
    found: set[str] = set()
    for path in (ROOT / folder).rglob("*.py"):
        found |= set(QUOTED_VARIABLE.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_documented_variable_exists(hooks: ModuleType) -> None:
    existing = (
        settings_variables()
        | variables_read_by("src")
        | variables_read_by("tests")
        | variables_read_by("bench")
        | variables_read_by("docs")
    )

    unknown = set(VARIABLE.findall(documentation(hooks))) - existing

    assert unknown == set()


def test_every_variable_the_service_and_its_tests_read_is_documented(hooks: ModuleType) -> None:
    read = settings_variables() | variables_read_by("src") | variables_read_by("tests/support")
    read |= set(QUOTED_VARIABLE.findall((ROOT / "tests" / "conftest.py").read_text()))

    undocumented = read - set(VARIABLE.findall(documentation(hooks)))

    assert undocumented == set()


def test_every_setting_has_a_meaning_in_the_generated_table(hooks: ModuleType) -> None:
    rows = hooks.settings_rows()

    assert [name for name, _default, _meaning in rows] == [
        field.metadata["env"] for field in dataclasses.fields(Settings)
    ]
    assert [name for name, _default, meaning in rows if not meaning.strip()] == []
    table = hooks.settings_table()
    assert "| `WFA_ARGON2_TIME_COST` | `2` (2 to 20) | argon2id iterations" in table
    assert "| `WFA_DEV` | `off` |" in table


def cli_flags() -> dict[str, set[str]]:
    """Each ``wfa-keys`` command's long options."""
    parser = build_parser()
    flags: dict[str, set[str]] = {"": set()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                flags[name] = {
                    option
                    for sub in command._actions
                    for option in sub.option_strings
                    if option.startswith("--") and option != "--help"
                }
        else:
            flags[""] |= {o for o in action.option_strings if o.startswith("--")} - {"--help"}
    return flags


def documented_flags(text: str) -> Iterator[tuple[str, str]]:
    """(command, flag) for every ``wfa-keys COMMAND ... --flag`` written in the pages."""
    text = re.sub(r"\\\n\s*", " ", text)  # shell lines continued with a backslash
    for match in COMMAND.finditer(text):
        command, rest = match.group(1), match.group(2)
        for flag in FLAG.findall(rest):
            yield command, flag
    for flag in FLAG.findall(" ".join(re.findall(r"wfa-keys (--[a-z-]+)", text))):
        yield "", flag


def test_every_documented_flag_exists(hooks: ModuleType) -> None:
    flags = cli_flags()
    wrong = [
        f"wfa-keys {command} {flag}"
        for command, flag in documented_flags(documentation(hooks))
        if command in flags and flag not in flags[command]
    ]
    unknown_commands = {
        command for command, _ in documented_flags(documentation(hooks)) if command not in flags
    }

    assert wrong == []
    assert unknown_commands == set()


def test_every_flag_of_every_command_is_documented(hooks: ModuleType) -> None:
    documented = set(documented_flags(documentation(hooks)))
    every_command_flag = {"--database-url"}  # documented once for every command

    missing = [
        f"wfa-keys {command} {flag}".replace("  ", " ")
        for command, flags in cli_flags().items()
        for flag in sorted(flags - every_command_flag)
        if (command, flag) not in documented
    ]

    assert missing == []


def test_every_command_is_documented(hooks: ModuleType) -> None:
    text = documentation(hooks)

    assert [c for c in cli_flags() if c and f"wfa-keys {c}" not in text] == []


def test_the_graphql_reference_has_every_operation_and_type(hooks: ModuleType) -> None:
    sdl = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    schema = build_schema(sdl)
    reference = hooks.graphql_reference(sdl)

    assert schema.query_type is not None
    assert schema.mutation_type is not None
    for root in (schema.query_type, schema.mutation_type):
        for name in root.fields:
            assert f"### `{name}`" in reference, name
    for name, graphql_type in schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if graphql_type in (schema.query_type, schema.mutation_type):
            continue
        assert f"### `{name}` (" in reference, name


def test_the_readme_stays_short_and_its_commands_are_the_ones_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")

    assert len(readme.splitlines()) <= 200
    test_command = (
        "python3 -m venv .venv && .venv/bin/pip install -e ./middleware -e '.[test]' "
        "&& .venv/bin/pytest"
    )
    assert test_command in readme.splitlines()
    assert "pip install -e ./middleware -e '.[test]'" in ci
    assert 'mkdocs" build --strict' in ci


def test_every_graphql_operation_has_a_curl_example() -> None:
    schema = build_schema((ROOT / "schema.graphql").read_text(encoding="utf-8"))
    page = (ROOT / "docs" / "graphql.md").read_text(encoding="utf-8")
    examples = " ".join(re.findall(r"```sh\n(.*?)```", page, re.DOTALL))

    assert schema.query_type is not None
    assert schema.mutation_type is not None
    missing = [
        name
        for root in (schema.query_type, schema.mutation_type)
        for name in root.fields
        if not re.search(rf"\b{name}\b", examples)
    ]

    assert missing == []
