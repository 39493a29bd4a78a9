"""The ``wfa-keys`` command line: each command, bad arguments and an unreachable database.

Commands run in a worker thread (``main`` runs its own event loop) with the test database;
the exit-status and no-traceback promises are also checked on the installed entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tortoise.context import TortoiseContext

from support.gql import Api, only_error_code
from wfa_auth import generate_key_id, token_digest
from wfa_keys.audit import COMMAND_LINE_ACTOR
from wfa_keys.cli import build_parser, describe_url, main
from wfa_keys.crypto import hasher_for
from wfa_keys.db import database
from wfa_keys.graphql import export_schema_sdl
from wfa_keys.limits import MIN_PASSWORD_LENGTH
from wfa_keys.models import (
    AccessToken,
    ApiKey,
    AuditAction,
    AuditEvent,
    KeyChange,
    Organization,
    Role,
    Session,
    User,
)
from wfa_keys.settings import Settings
from wfa_keys.store import TortoiseKeyRecord

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


# ------------------------------------------------------------- the user lifecycle

ADMIN_EMAIL = "admin@acme.example"


async def _key_with_token(owner_email: str) -> str:
    """A key of the user and one live access token of it; returns the Key ID."""
    owner = await User.get(email=owner_email)
    key = await ApiKey.create(
        key_id=generate_key_id(),
        name="CI",
        secret_hash="unused",
        owner_id=owner.id,
        organization_id=owner.organization_id,
    )
    await AccessToken.create(
        token_hash=token_digest(generate_key_id()),
        key_id=key.key_id,
        secret_fingerprint="unused",
        expires_at=datetime.now(UTC) + timedelta(minutes=15),
    )
    return key.key_id


async def test_deactivating_a_user_ends_their_sessions_and_revokes_their_tokens(
    admin: Api, clean_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key_id = await _key_with_token(ADMIN_EMAIL)
    await KeyChange.all().delete()

    status = await run("deactivate-user", "--email", "Admin@Acme.example")

    assert status == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "Deactivated admin@acme.example" in out
    assert (await User.get(email=ADMIN_EMAIL)).is_active is False
    assert await Session.all().count() == 0
    assert await AccessToken.filter(key_id=key_id).count() == 0
    assert await KeyChange.all().values_list("key_id", flat=True) == [None]
    assert await admin("{ me { email } }") == {"data": {"me": None}}
    assert not TortoiseKeyRecord.from_model(
        await ApiKey.get(key_id=key_id).select_related("owner", "organization")
    ).owner_is_active_admin


async def test_activating_a_user_again_brings_no_token_back(
    admin: Api, clean_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key_id = await _key_with_token(ADMIN_EMAIL)
    assert await run("deactivate-user", "--email", ADMIN_EMAIL) == 0
    await KeyChange.all().delete()

    status = await run("activate-user", "--email", ADMIN_EMAIL)

    assert status == 0
    assert "Activated admin@acme.example" in capsys.readouterr().out
    assert (await User.get(email=ADMIN_EMAIL)).is_active is True
    assert await AccessToken.filter(key_id=key_id).count() == 0
    assert await KeyChange.all().values_list("key_id", flat=True) == [None]
    assert "errors" not in await admin.login(ADMIN_EMAIL)


async def test_set_role_member_refuses_the_keys_and_revokes_their_tokens(
    admin: Api, clean_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key_id = await _key_with_token(ADMIN_EMAIL)
    await KeyChange.all().delete()

    status = await run("set-role", "--email", ADMIN_EMAIL, "--role", "member")

    assert status == 0
    assert capsys.readouterr().out == "admin@acme.example is now member.\n"
    assert (await User.get(email=ADMIN_EMAIL)).role is Role.MEMBER
    assert await AccessToken.filter(key_id=key_id).count() == 0
    assert await KeyChange.all().values_list("key_id", flat=True) == [None]
    assert only_error_code(await admin("{ apiKeys { totalCount } }")) == "FORBIDDEN"
    record = TortoiseKeyRecord.from_model(
        await ApiKey.get(key_id=key_id).select_related("owner", "organization")
    )
    assert record.owner_is_active_admin is False


async def test_set_role_admin_announces_and_keeps_the_sessions(member: Api, clean_env: str) -> None:
    await KeyChange.all().delete()

    assert await run("set-role", "--email", "member@acme.example", "--role", "admin") == 0

    assert await KeyChange.all().values_list("key_id", flat=True) == [None]
    assert "errors" not in await member("{ apiKeys { totalCount } }")


async def test_set_password_reads_stdin_and_ends_the_users_sessions(
    admin: Api, clean_env: str, stdin: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    key_id = await _key_with_token(ADMIN_EMAIL)
    stdin.write("a brand new passphrase\n")
    stdin.seek(0)

    status = await run("set-password", "--email", ADMIN_EMAIL)

    assert status == 0
    output = capsys.readouterr()
    assert output.out == "New password set for admin@acme.example; 1 session(s) ended.\n"
    assert "brand new" not in output.out + output.err
    assert await Session.all().count() == 0
    # A password is about sessions: the keys' tokens stay.
    assert await AccessToken.filter(key_id=key_id).count() == 1
    assert only_error_code(await admin.login(ADMIN_EMAIL)) == "UNAUTHENTICATED"
    assert "errors" not in await admin.login(ADMIN_EMAIL, "a brand new passphrase")


async def test_set_password_refuses_a_short_one_and_changes_nothing(
    admin: Api, clean_env: str, stdin: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin.write("short\n")
    stdin.seek(0)

    status = await run("set-password", "--email", ADMIN_EMAIL)

    assert status == 1
    assert capsys.readouterr().err == (
        f"wfa-keys: the password must have at least {MIN_PASSWORD_LENGTH} characters\n"
    )
    assert await Session.all().count() == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["deactivate-user", "--email", "nobody@acme.example"],
        ["activate-user", "--email", "nobody@acme.example"],
        ["set-role", "--email", "nobody@acme.example", "--role", "admin"],
    ],
    ids=["deactivate", "activate", "set-role"],
)
async def test_user_commands_refuse_an_unknown_email_with_one_line(
    db: TortoiseContext, clean_env: str, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    status = await run(*argv)

    output = capsys.readouterr()
    assert status == 1
    assert output.out == ""
    assert output.err == "wfa-keys: no user with the email 'nobody@acme.example'\n"
    assert await KeyChange.all().count() == 0


async def test_list_users_prints_one_line_per_user(
    admin: Api, member: Api, clean_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("deactivate-user", "--email", "member@acme.example") == 0
    capsys.readouterr()

    assert await run("list-users") == 0

    assert capsys.readouterr().out.splitlines() == [
        "admin@acme.example\tadmin\tactive\tAcme",
        "member@acme.example\tmember\tinactive\tAcme",
    ]


async def test_set_subscription_is_announced_in_its_transaction(
    db: TortoiseContext, clean_env: str
) -> None:
    await Organization.create(name="Acme", has_workflow_automation=True)

    assert (
        await run("set-subscription", "--organization", "Acme", "--workflow-automation", "off") == 0
    )
    assert (
        await run("set-subscription", "--organization", "Acme", "--workflow-automation", "off") == 0
    )

    assert await KeyChange.all().values_list("key_id", flat=True) == [None]


async def test_disable_inactive_keys_disables_the_stale_keys_and_lists_them(
    db: TortoiseContext, clean_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    org = await Organization.create(
        name="Acme", has_workflow_automation=True, key_inactivity_days=1
    )
    owner = await User.create(
        email="ada@acme.test", password_hash="unused", role=Role.ADMIN, organization=org
    )
    key = await ApiKey.create(
        key_id=generate_key_id(), name="old", secret_hash="unused", owner=owner, organization=org
    )
    await ApiKey.filter(id=key.id).update(created_at=datetime.now(UTC) - timedelta(days=2))

    status = await run("disable-inactive-keys")

    assert status == 0
    assert capsys.readouterr().out.splitlines() == ["Disabled 1 inactive key(s).", key.key_id]
    assert not (await ApiKey.get(id=key.id)).enabled


# ------------------------------------------------------------- the key commands


async def _key_of(api: Api, name: str) -> str:
    created = await api.create_key(name)
    key_id: str = created["apiKey"]["id"]
    return key_id


async def test_list_keys_prints_every_organizations_keys_newest_first(
    admin: Api, other_admin: Api, clean_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = await _key_of(admin, "CI deploy")
    second = await _key_of(admin, "nightly export")
    other = await _key_of(other_admin, "Globex key")

    assert await run("list-keys") == 0

    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(line[0], line[1], line[2], line[3], line[4]) for line in lines] == [
        (second, "nightly export", "active", "Acme", ADMIN_EMAIL),
        (first, "CI deploy", "active", "Acme", ADMIN_EMAIL),
        (other, "Globex key", "active", "Globex", "admin@globex.example"),
    ]


async def test_list_keys_filters_by_organization_status_and_search_and_prints_json(
    admin: Api, other_admin: Api, clean_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy = await _key_of(admin, "CI deploy")
    export = await _key_of(admin, "nightly export")
    await _key_of(other_admin, "deploy at Globex")
    assert await run("disable-key", export) == 0
    capsys.readouterr()

    assert await run("list-keys", "--organization", "Acme", "--search", "DEPLOY", "--json") == 0
    (only,) = json.loads(capsys.readouterr().out)
    assert (only["key_id"], only["status"], only["organization"]) == (deploy, "active", "Acme")
    assert "secret" not in json.dumps(only).lower()

    assert await run("list-keys", "--status", "disabled", "--json") == 0
    assert [row["key_id"] for row in json.loads(capsys.readouterr().out)] == [export]

    assert await run("list-keys", "--organization", "Nowhere") == 1
    assert capsys.readouterr().err == "wfa-keys: no organization named 'Nowhere'\n"


async def test_disable_key_is_audited_as_the_command_line_and_announced(
    admin: Api, clean_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key_id = await _key_of(admin, "CI deploy")
    await KeyChange.all().delete()

    assert await run("disable-key", key_id) == 0
    assert await run("disable-key", key_id) == 0  # already disabled: nothing more recorded

    assert capsys.readouterr().out.splitlines() == [f"{key_id} (CI deploy) is disabled."] * 2
    assert not (await ApiKey.get(key_id=key_id)).enabled
    events = await AuditEvent.filter(key_id=key_id, action=AuditAction.KEY_DISABLED)
    assert [(e.actor_email, e.actor_id) for e in events] == [(COMMAND_LINE_ACTOR, None)]
    assert [change.key_id for change in await KeyChange.all()] == [key_id]

    assert await run("enable-key", key_id) == 0
    assert (await ApiKey.get(key_id=key_id)).enabled
    assert await AuditEvent.filter(
        key_id=key_id, action=AuditAction.KEY_ENABLED, actor_email=COMMAND_LINE_ACTOR
    ).exists()


async def test_delete_key_asks_and_keeps_the_key_unless_told_yes(
    admin: Api, clean_env: str, stdin: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    key_id = await _key_of(admin, "CI deploy")
    stdin.write("n\n")
    stdin.seek(0)

    assert await run("delete-key", key_id) == 1

    captured = capsys.readouterr()
    assert captured.out == f"Delete {key_id} (CI deploy) of 'Acme' for good? [y/N] "
    assert captured.err == "wfa-keys: not deleted (answer y to delete, or pass --yes)\n"
    assert await ApiKey.filter(key_id=key_id).exists()

    assert await run("delete-key", key_id, "--yes") == 0
    assert not await ApiKey.filter(key_id=key_id).exists()
    assert await AuditEvent.filter(
        key_id=key_id, action=AuditAction.KEY_DELETED, actor_email=COMMAND_LINE_ACTOR
    ).exists()


async def test_delete_key_answered_yes_deletes_it(
    admin: Api, clean_env: str, stdin: io.StringIO
) -> None:
    key_id = await _key_of(admin, "CI deploy")
    stdin.write("y\n")
    stdin.seek(0)

    assert await run("delete-key", key_id) == 0
    assert not await ApiKey.filter(key_id=key_id).exists()


@pytest.mark.parametrize("command", [["disable-key"], ["enable-key"], ["delete-key", "--yes"]])
async def test_key_commands_refuse_an_unknown_key_with_one_line(
    command: list[str], db: TortoiseContext, clean_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(*command, "wfak_nosuchkeynosuchkey0") == 1
    assert capsys.readouterr().err == (
        "wfa-keys: no key with the Key ID 'wfak_nosuchkeynosuchkey0'\n"
    )


async def test_user_commands_are_audited_as_the_command_line(
    db: TortoiseContext, clean_env: str, stdin: io.StringIO
) -> None:
    stdin.write(f"{PASSWORD}\n{PASSWORD}\n")
    stdin.seek(0)

    assert (
        await run(
            "create-user", "--email", "ada@acme.test", "--organization", "Acme", "--role", "admin"
        )
        == 0
    )
    assert await run("set-role", "--email", "ada@acme.test", "--role", "member") == 0
    assert await run("deactivate-user", "--email", "ada@acme.test") == 0
    assert await run("activate-user", "--email", "ada@acme.test") == 0
    assert await run("set-password", "--email", "ada@acme.test") == 0
    assert (
        await run("set-subscription", "--organization", "Acme", "--workflow-automation", "off") == 0
    )

    org = await Organization.get(name="Acme")
    events = await AuditEvent.filter(organization_id=org.id).order_by("id")
    assert [(e.action, e.actor_email) for e in events] == [
        (action, COMMAND_LINE_ACTOR)
        for action in (
            AuditAction.USER_CREATED,
            AuditAction.ROLE_CHANGED,
            AuditAction.USER_DEACTIVATED,
            AuditAction.USER_ACTIVATED,
            AuditAction.PASSWORD_SET,
            AuditAction.SUBSCRIPTION_CHANGED,
        )
    ]
    assert events[0].detail == {"email": "ada@acme.test", "role": "admin"}
    assert PASSWORD not in json.dumps([e.detail for e in events])


def _options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for sub_name, sub_action in _options(sub):
                    yield f"{name} {sub_name}", sub_action
        else:
            yield "/".join(action.option_strings) or action.dest, action


def test_every_option_of_every_command_has_help_text() -> None:
    missing = [name for name, action in _options(build_parser()) if not action.help]

    assert missing == []


def _command_help(command: str) -> str:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            parser: argparse.ArgumentParser = action.choices[command]
            return parser.format_help()
    raise AssertionError("no sub-commands")


def test_the_help_shows_the_database_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WFA_DATABASE_URL", raising=False)
    text = _command_help("list-keys")
    assert "sqlite://wfa-keys.sqlite3" in " ".join(text.split())

    monkeypatch.setenv("WFA_DATABASE_URL", "postgres://app:s3cret@db:5432/keys")
    text = _command_help("migrate")
    assert "postgres://app:***@db:5432/keys" in " ".join(text.split())
    assert "s3cret" not in text


def test_a_sqlite_file_in_a_missing_folder_is_named_as_the_cause(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFA_")}
    missing = tmp_path / "no" / "such"
    result = subprocess.run(
        [str(WFA_KEYS), "list-keys", "--database-url", f"sqlite://{missing / 'keys.sqlite3'}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr == (
        f"wfa-keys: cannot use the database sqlite://{missing / 'keys.sqlite3'}: "
        f"the folder {missing} does not exist\n"
    )


async def test_prune_audit_events_deletes_the_events_past_the_retention(
    db: TortoiseContext,
    clean_env: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WFA_AUDIT_RETENTION_DAYS", "30")
    old = await AuditEvent.create(action=AuditAction.LOGIN_FAILED, client_ip="192.0.2.1")
    recent = await AuditEvent.create(action=AuditAction.LOGIN_FAILED, client_ip="192.0.2.2")
    await AuditEvent.filter(id=old.id).update(created_at=datetime.now(UTC) - timedelta(days=31))
    await AuditEvent.filter(id=recent.id).update(created_at=datetime.now(UTC) - timedelta(days=29))

    status = await run("prune-audit-events")

    assert status == 0
    assert capsys.readouterr().out == "Deleted 1 audit event(s) older than 30 day(s).\n"
    assert await AuditEvent.all().values_list("id", flat=True) == [recent.id]
