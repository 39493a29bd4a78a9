"""The ``wfa-keys`` command line: each command, bad arguments and an unreachable database.

Commands run in a worker thread (``main`` runs its own event loop) with the test database;
the exit-status and no-traceback promises are also checked on the installed entry point.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tortoise.context import TortoiseContext

from wfa_keys.cli import describe_url, main
from wfa_keys.crypto import hasher_for
from wfa_keys.db import database
from wfa_keys.graphql import export_schema_sdl
from wfa_keys.models import Organization, Role, User
from wfa_keys.settings import Settings

PASSWORD = "a long enough password"
WFA_KEYS = Path(sys.executable).with_name("wfa-keys")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    """No ``WFA_*`` variable from the outside; the database is the test database."""
    for name in list(os.environ):
        if name.startswith("WFA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WFA_DATABASE_URL", database_url)
    return database_url


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """A piped standard input (not a terminal)."""
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stdin", pipe)
    return pipe


async def run(*argv: str) -> int:
    """Run the command line in a thread; SystemExit becomes the returned status."""
    try:
        return await asyncio.to_thread(main, list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_migrate_brings_a_new_database_up_to_date(
    clean_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite://{tmp_path / 'new.sqlite3'}" if clean_env.startswith("sqlite") else clean_env

    status = await run("migrate", "--database-url", url)

    assert status == 0
    assert "up to date" in capsys.readouterr().out
    async with database(url, migrate=False):
        assert await Organization.all().count() >= 0  # raises when the table is missing


async def test_create_user_reads_a_piped_password_and_creates_the_organization_subscribed(
    db: TortoiseContext, clean_env: str, stdin: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin.write(PASSWORD + "\n")
    stdin.seek(0)

    status = await run(
        "create-user", "--email", "Ada@Acme.Example", "--organization", "Acme", "--role", "admin"
    )

    output = capsys.readouterr()
    assert status == 0
    assert "ada@acme.example" in output.out
    assert PASSWORD not in output.out + output.err
    user = await User.get(email="ada@acme.example").prefetch_related("organization")
    assert user.role is Role.ADMIN
    assert user.organization.name == "Acme"
    assert user.organization.has_workflow_automation is True
    assert hasher_for(Settings()).verify(user.password_hash, PASSWORD)


async def test_create_user_prompts_twice_on_a_terminal_and_refuses_different_answers(
    db: TortoiseContext,
    clean_env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda _prompt: next(answers))

    status = await run(
        "create-user", "--email", "ada@acme.example", "--organization", "Acme", "--role", "member"
    )

    assert status == 1
    assert capsys.readouterr().err == "wfa-keys: the two passwords differ\n"
    assert await User.all().count() == 0


async def test_create_user_prompts_on_a_terminal(
    db: TortoiseContext, clean_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda _prompt: PASSWORD)

    status = await run(
        "create-user", "--email", "bob@acme.example", "--organization", "Acme", "--role", "member"
    )

    assert status == 0
    assert (await User.get(email="bob@acme.example")).role is Role.MEMBER


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("ada@acme.example", "short", "the password must have at least 12 characters"),
        ("not-an-email", PASSWORD, "not an email address: 'not-an-email'"),
    ],
)
async def test_create_user_refuses_bad_input_with_one_line(
    db: TortoiseContext,
    clean_env: str,
    stdin: io.StringIO,
    capsys: pytest.CaptureFixture[str],
    email: str,
    password: str,
    message: str,
) -> None:
    stdin.write(password + "\n")
    stdin.seek(0)

    status = await run("create-user", "--email", email, "--organization", "Acme", "--role", "admin")

    assert status == 1
    assert capsys.readouterr().err == f"wfa-keys: {message}\n"
    assert await User.all().count() == 0
    assert await Organization.all().count() == 0


async def test_create_user_refuses_an_email_taken_in_another_case(
    db: TortoiseContext, clean_env: str, stdin: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin.write(PASSWORD + "\n" + PASSWORD + "\n")
    stdin.seek(0)
    assert (
        await run(
            "create-user",
            "--email",
            "ada@acme.example",
            "--organization",
            "Acme",
            "--role",
            "admin",
        )
        == 0
    )

    status = await run(
        "create-user", "--email", "ADA@acme.example", "--organization", "Other", "--role", "admin"
    )

    assert status == 1
    assert capsys.readouterr().err == (
        "wfa-keys: a user with the email ada@acme.example exists already\n"
    )
    assert await User.all().count() == 1
    assert not await Organization.exists(name="Other")


async def test_set_subscription_turns_workflow_automation_off_and_on(
    db: TortoiseContext, clean_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await Organization.create(name="Acme", has_workflow_automation=True)

    off = await run("set-subscription", "--organization", "Acme", "--workflow-automation", "off")
    after_off = (await Organization.get(name="Acme")).has_workflow_automation
    on = await run("set-subscription", "--organization", "Acme", "--workflow-automation", "on")
    after_on = (await Organization.get(name="Acme")).has_workflow_automation

    assert (off, after_off, on, after_on) == (0, False, 0, True)
    assert "Workflow Automation is on for 'Acme'" in capsys.readouterr().out


async def test_set_subscription_of_an_unknown_organization_fails_with_one_line(
    db: TortoiseContext, clean_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = await run(
        "set-subscription", "--organization", "Nowhere", "--workflow-automation", "on"
    )

    assert status == 1
    assert capsys.readouterr().err == "wfa-keys: no organization named 'Nowhere'\n"
    assert await Organization.all().count() == 0


async def test_export_schema_writes_the_sdl_to_a_file_or_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "schema.graphql"

    to_file = await run("export-schema", "--output", str(target))
    to_stdout = await run("export-schema")

    assert (to_file, to_stdout) == (0, 0)
    assert target.read_text(encoding="utf-8") == export_schema_sdl()
    assert capsys.readouterr().out == export_schema_sdl()


async def test_export_schema_to_an_unwritable_place_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = await run("export-schema", "--output", str(tmp_path / "missing" / "schema.graphql"))

    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("wfa-keys: cannot write ")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["serve", "--port", "65536"],
        ["serve", "--port", "eighty"],
        ["serve", "--workers", "0"],
        ["create-user", "--email", "ada@acme.example"],
        ["create-user", "--email", "a@b.c", "--organization", "A", "--role", "owner"],
        ["set-subscription", "--organization", "Acme", "--workflow-automation", "maybe"],
        ["migrate", "--no-such-flag"],
    ],
)
async def test_bad_arguments_get_one_line_and_exit_status_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status = await run(*argv)

    output = capsys.readouterr()
    assert status == 2
    assert output.out == ""
    assert output.err.startswith("wfa-keys")
    assert output.err.count("\n") == 1
    assert "--help" in output.err


async def test_a_bad_setting_gets_one_line(
    clean_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WFA_DEV", "maybe")

    status = await run("migrate")

    assert status == 1
    assert capsys.readouterr().err == "wfa-keys: WFA_DEV must be on or off, not 'maybe'\n"


def test_describe_url_masks_the_password() -> None:
    assert describe_url("postgres://app:s3cret@db:5432/keys") == "postgres://app:***@db:5432/keys"
    assert describe_url("sqlite://wfa-keys.sqlite3") == "sqlite://wfa-keys.sqlite3"


def unreachable_urls(tmp_path: Path) -> list[str]:
    return [
        f"postgres://app:s3cret@127.0.0.1:{free_port()}/keys",
        f"sqlite://{tmp_path / 'no' / 'such' / 'dir' / 'keys.sqlite3'}",
        "mysql://app@127.0.0.1:1/keys",  # no driver installed for it
        "nonsense",
    ]


@pytest.mark.parametrize(
    "command",
    [["migrate"], ["set-subscription", "--organization", "A", "--workflow-automation", "on"]],
)
def test_an_unreachable_database_gets_one_line_without_traceback(
    command: list[str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFA_")}
    for url in unreachable_urls(tmp_path):
        result = subprocess.run(
            [str(WFA_KEYS), *command, "--database-url", url],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

        assert result.returncode == 1, (url, result.stderr)
        assert result.stderr.startswith("wfa-keys: cannot use the database "), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert "s3cret" not in result.stderr
        assert result.stdout == ""


def test_the_module_runs_as_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wfa_keys", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0
    for command in ("serve", "migrate", "create-user", "set-subscription", "export-schema"):
        assert command in result.stdout
