"""The `wfa-keys` commands for keys: list-keys, disable-key, enable-key and delete-key.

They go through :class:`~wfa_keys.keys.KeyManager`, as the GraphQL mutations do, with the
command line as the actor (:meth:`~wfa_keys.keys.Actor.command_line`): each change is one
transaction with its audit event and its announcement on the change feed, so every running
``wfa-keys serve`` refuses a disabled or deleted key from its next call on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from wfa_keys.cli import CommandError, _settings, _with_database
from wfa_keys.crypto import hasher_for
from wfa_keys.errors import InvalidInput, NotFound
from wfa_keys.keys import Actor, KeyManager, KeyStatus, key_status
from wfa_keys.models import ApiKey, Organization
from wfa_keys.settings import Settings

__all__ = ["add_key_commands"]

#: The columns of ``list-keys`` (tab-separated, or the keys of each ``--json`` object).
COLUMNS = ("key_id", "name", "status", "organization", "owner", "created_at", "expires_at")


def add_key_commands(
    commands: Any, database_flag: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Add the key commands to the ``wfa-keys`` sub-command parsers."""
    listing = commands.add_parser(
        "list-keys",
        help="list keys, newest first: Key ID, name, status, organization, owner, dates",
    )
    listing.add_argument(
        "--organization", metavar="NAME", help="only this organization's keys (default: all)"
    )
    listing.add_argument(
        "--status",
        choices=[status.value for status in KeyStatus],
        help="only keys of this status (an expired key is expired even when disabled)",
    )
    listing.add_argument(
        "--search", metavar="TEXT", help="only keys whose name or Key ID contains TEXT (any case)"
    )
    listing.add_argument(
        "--json", action="store_true", help="print a JSON array of objects instead of tab lines"
    )
    database_flag(listing)
    listing.set_defaults(handler=_list_keys)

    for name, enabled, text in (
        ("disable-key", False, "disable a key: refused from its next call on, its tokens deleted"),
        ("enable-key", True, "enable a key again (tokens deleted earlier stay deleted)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("key_id", metavar="KEY_ID", help="the key's Key ID (wfak_...)")
        database_flag(command)
        command.set_defaults(handler=_set_key_enabled, enabled=enabled)

    delete = commands.add_parser(
        "delete-key", help="delete a key for good, with its tokens (asks first unless --yes)"
    )
    delete.add_argument("key_id", metavar="KEY_ID", help="the key's Key ID (wfak_...)")
    delete.add_argument("--yes", action="store_true", help="delete without asking")
    database_flag(delete)
    delete.set_defaults(handler=_delete_key)


def _manager(settings: Settings) -> KeyManager:
    return KeyManager(hasher_for(settings))


async def _actor_for(key_id: str) -> Actor:
    """The command line acting on the organization that holds ``key_id``."""
    try:
        key = await ApiKey.filter(key_id=key_id.strip()).only("id", "organization_id").first()
    except InvalidInput as exc:  # pragma: no cover - the filter takes any text
        raise CommandError(exc.message) from None
    if key is None:
        raise CommandError(f"no key with the Key ID {key_id.strip()!r}")
    return Actor.command_line(key.organization_id)


def _key_error(key_id: str, exc: Exception) -> Exception:
    if isinstance(exc, NotFound):
        return CommandError(f"no key with the Key ID {key_id.strip()!r}")
    if isinstance(exc, InvalidInput):
        return CommandError(f"{exc.field}: {exc.message}")
    return exc


def _list_keys(args: argparse.Namespace) -> int:
    settings = _settings(args)
    manager = _manager(settings)
    status = KeyStatus(args.status) if args.status else None

    async def rows() -> list[dict[str, Any]]:
        organizations = Organization.all().order_by("name")
        if args.organization is not None:
            organizations = organizations.filter(name=args.organization.strip())
        found = await organizations
        if args.organization is not None and not found:
            raise CommandError(f"no organization named {args.organization!r}")
        result: list[dict[str, Any]] = []
        for organization in found:
            actor = Actor.command_line(organization.id)
            try:
                keys = await manager.keys(actor, search=args.search, status=status)
            except InvalidInput as exc:
                raise CommandError(f"--search: {exc.message}") from None
            result += [_row(key, organization.name) for key in keys]
        return result

    found = _with_database(settings, rows)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for row in found:
        print("\t".join("-" if row[column] is None else str(row[column]) for column in COLUMNS))
    return 0


def _row(key: ApiKey, organization: str) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "key_id": key.key_id,
        "name": key.name,
        "status": key_status(key).value,
        "organization": organization,
        "owner": key.owner.email,
        "created_at": when(key.created_at),
        "expires_at": when(key.expires_at),
        "last_used_at": when(key.last_used_at),
        "scopes": list(key.scopes or []),
        "allowed_cidrs": list(key.allowed_cidrs or []),
    }


def _set_key_enabled(args: argparse.Namespace) -> int:
    settings = _settings(args)
    manager = _manager(settings)

    async def change() -> ApiKey:
        actor = await _actor_for(args.key_id)
        try:
            return await manager.set_key_enabled(actor, args.key_id, args.enabled)
        except (NotFound, InvalidInput) as exc:
            raise _key_error(args.key_id, exc) from None

    key = _with_database(settings, change)
    print(f"{key.key_id} ({key.name}) is {key_status(key).value}.")
    return 0


def _delete_key(args: argparse.Namespace) -> int:
    settings = _settings(args)
    manager = _manager(settings)

    async def describe() -> str:
        await _actor_for(args.key_id)
        key = await ApiKey.get(key_id=args.key_id.strip()).select_related("organization")
        return f"{key.key_id} ({key.name}) of {key.organization.name!r}"

    if not args.yes:
        what = _with_database(settings, describe)
        print(f"Delete {what} for good? [y/N] ", end="", flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in {"y", "yes"}:
            raise CommandError("not deleted (answer y to delete, or pass --yes)")

    async def delete() -> str:
        actor = await _actor_for(args.key_id)
        try:
            return await manager.delete_key(actor, args.key_id)
        except (NotFound, InvalidInput) as exc:
            raise _key_error(args.key_id, exc) from None

    key_id = _with_database(settings, delete)
    print(f"Deleted {key_id}.")
    return 0
