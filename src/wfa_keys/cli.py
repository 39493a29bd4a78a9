"""The ``wfa-keys`` command: serve, migrate, manage users and subscriptions, export the schema.

Settings come from ``WFA_*`` environment variables; flags override them. Any failure a user
can cause (a bad argument, an unreachable database, a duplicate user) ends with one line on
stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

from tortoise.exceptions import BaseORMException

from wfa_keys import __version__
from wfa_keys.bootstrap import announce_admin, bootstrap_admin
from wfa_keys.db import database
from wfa_keys.logs import configure_logging, logging_config
from wfa_keys.models import Role
from wfa_keys.settings import Settings, SettingsError
from wfa_keys.users import (
    UserError,
    create_user,
    list_users,
    set_password,
    set_role,
    set_subscription,
    set_user_active,
)

__all__ = ["main"]

PROG = "wfa-keys"
EXIT_USAGE = 2
EXIT_FAILURE = 1

T = TypeVar("T")


class CommandError(Exception):
    """A command cannot go on; the message is the one line shown on stderr."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``wfa-keys`` command line."""
    parser = _Parser(
        prog=PROG,
        description="API keys for Workflow Automation: the key-management service.",
        epilog="Settings are read from WFA_* environment variables (see the README); "
        "flags override them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def database_flag(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--database-url", metavar="URL", help="the database (default: $WFA_DATABASE_URL)"
        )

    serve = commands.add_parser("serve", help="apply migrations, then serve HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=8000, help="port to listen on (8000; 0: any free port)"
    )
    serve.add_argument("--workers", type=_workers, default=1, help="worker processes (1)")
    serve.add_argument(
        "--dev", action="store_true", help="development mode: GraphiQL and introspection on"
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        metavar="LIST",
        help="comma-separated addresses or networks of the reverse proxies whose "
        "X-Forwarded-For/-Proto are believed (default: $WFA_FORWARDED_ALLOW_IPS, else none)",
    )
    serve.add_argument(
        "--root-path",
        metavar="PATH",
        help="path prefix the proxy serves the service under (default: $WFA_ROOT_PATH)",
    )
    database_flag(serve)
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    database_flag(migrate)
    migrate.set_defaults(handler=_migrate)

    user = commands.add_parser(
        "create-user",
        help="create a user (password from stdin when piped, else prompted)",
    )
    user.add_argument("--email", required=True)
    user.add_argument(
        "--organization", required=True, help="created, with the subscription, if missing"
    )
    user.add_argument("--role", required=True, choices=[r.value for r in Role])
    database_flag(user)
    user.set_defaults(handler=_create_user)

    users = commands.add_parser("list-users", help="list every user: email, role, state")
    database_flag(users)
    users.set_defaults(handler=_list_users)

    for name, active, text in (
        ("deactivate-user", False, "deactivate a user: sessions end, keys and tokens refused"),
        ("activate-user", True, "activate a user again (revoked tokens stay revoked)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--email", required=True)
        database_flag(command)
        command.set_defaults(handler=_set_user_active, active=active)

    password = commands.add_parser(
        "set-password",
        help="set a user's password (from stdin when piped, else prompted); sessions end",
    )
    password.add_argument("--email", required=True)
    database_flag(password)
    password.set_defaults(handler=_set_password)

    role = commands.add_parser("set-role", help="make a user an admin or a member")
    role.add_argument("--email", required=True)
    role.add_argument("--role", required=True, choices=[r.value for r in Role])
    database_flag(role)
    role.set_defaults(handler=_set_role)

    subscription = commands.add_parser(
        "set-subscription", help="turn an organization's Workflow Automation on or off"
    )
    subscription.add_argument("--organization", required=True)
    subscription.add_argument("--workflow-automation", required=True, choices=["on", "off"])
    database_flag(subscription)
    subscription.set_defaults(handler=_set_subscription)

    inactive = commands.add_parser(
        "disable-inactive-keys",
        help="disable the keys past their organization's inactivity limit (for a cron job)",
    )
    database_flag(inactive)
    inactive.set_defaults(handler=_disable_inactive_keys)

    schema = commands.add_parser("export-schema", help="write the GraphQL schema (SDL)")
    schema.add_argument("--output", metavar="FILE", help="the file to write (default: stdout)")
    schema.set_defaults(handler=_export_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (SettingsError, CommandError, UserError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", status=130)
    except Exception as exc:  # the promise: one line, never a traceback
        _fail(f"unexpected error ({type(exc).__name__})")


def _fail(message: str, status: int = EXIT_FAILURE) -> NoReturn:
    print(f"{PROG}: {message}", file=sys.stderr)
    raise SystemExit(status)


def _port(raw: str) -> int:
    return _bounded_int(raw, 0, 65535)


def _workers(raw: str) -> int:
    return _bounded_int(raw, 1, 64)


def _bounded_int(raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be between {low} and {high}, not {value}")
    return value


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return Settings.from_env(database_url=getattr(args, "database_url", None), **overrides)


def describe_url(url: str) -> str:
    """``url`` fit for a message: its password, if any, masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _with_database(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` with the database open and migrated; database failures become one line."""

    async def run() -> T:
        async with database(settings.database_url):
            return await work()

    try:
        return asyncio.run(run())
    except (OSError, sqlite3.Error, BaseORMException, TimeoutError) as exc:
        raise CommandError(_database_failure(settings.database_url, exc)) from None
    except ImportError as exc:
        raise CommandError(
            f"cannot use the database {describe_url(settings.database_url)}: "
            f"its driver ({exc.name}) is not installed"
        ) from None
    except Exception as exc:
        # asyncpg's errors (bad database name, refused authentication) share no base class
        # with the others and asyncpg is optional: recognise them by module.
        if type(exc).__module__.startswith("asyncpg"):
            raise CommandError(_database_failure(settings.database_url, exc)) from None
        raise


def _database_failure(url: str, exc: BaseException) -> str:
    # The type names the failure; the text could quote SQL or the server's configuration.
    return f"cannot use the database {describe_url(url)} ({type(exc).__name__})"


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(
        args,
        dev=True if args.dev else None,
        forwarded_allow_ips=_list_flag(args.forwarded_allow_ips),
        root_path=args.root_path,
    )
    configure_logging(settings.log_level)
    # Listen first: a port in use or a bad host ends here, before any admin is created.
    sock = _listen(args.host, args.port)
    metrics_dir = _metrics_dir(settings)
    try:
        admin = _with_database(settings, lambda: bootstrap_admin(settings))
        if admin is not None:
            announce_admin(admin)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"Serving on http://{shown}:{port}", flush=True)
        return _run_uvicorn(settings, sock, args.workers)
    finally:
        sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _list_flag(raw: str | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: a free one), or one line saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or type(exc).__name__
        raise CommandError(f"cannot listen on {host}:{port} ({reason})") from None
    sock.set_inheritable(True)
    return sock


def _metrics_dir(settings: Settings) -> str | None:
    """Point prometheus-client at a fresh directory shared by the workers (made here)."""
    if not settings.metrics or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    path = tempfile.mkdtemp(prefix="wfa-keys-metrics-")
    # Before prometheus_client is imported anywhere: it picks its mode from the environment.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def _run_uvicorn(settings: Settings, sock: socket.socket, workers: int) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from wfa_keys.app import create_app
    from wfa_keys.proxy import uvicorn_options
    from wfa_keys.transport import http_protocol

    app: Any
    if workers > 1:
        # Worker processes build their own app from the environment: hand the settings over.
        os.environ.update(
            {
                "WFA_DATABASE_URL": settings.database_url,
                "WFA_DEV": "on" if settings.dev else "off",
                "WFA_FORWARDED_ALLOW_IPS": ",".join(settings.forwarded_allow_ips),
                "WFA_ROOT_PATH": settings.root_path,
            }
        )
        app = "wfa_keys.app:create_app"
    else:
        app = create_app(settings)
    config = uvicorn.Config(
        app,
        factory=workers > 1,
        workers=workers,
        log_config=logging_config(settings.log_level),
        access_log=False,  # the request log replaces it, and never logs query strings
        server_header=False,
        http=http_protocol(),  # one write per response (see wfa_keys.transport)
        **uvicorn_options(settings),
    )
    server = uvicorn.Server(config)
    if workers > 1:
        Multiprocess(config, sockets=[sock]).run()
        return 0
    config.load_app()
    server.run(sockets=[sock])
    if not server.started:
        raise CommandError("the server did not start (see the log above)")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def nothing() -> None:
        return None

    _with_database(settings, nothing)
    print(f"The database {describe_url(settings.database_url)} is up to date.")
    return 0


def _create_user(args: argparse.Namespace) -> int:
    settings = _settings(args)
    password = _read_password()
    user = _with_database(
        settings,
        lambda: create_user(
            settings,
            email=args.email,
            password=password,
            organization=args.organization,
            role=Role(args.role),
        ),
    )
    print(f"Created {user.role.value} {user.email} in organization {args.organization.strip()!r}.")
    return 0


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != password:
        raise CommandError("the two passwords differ")
    return password


def _list_users(args: argparse.Namespace) -> int:
    settings = _settings(args)
    users = _with_database(settings, list_users)
    for user in users:
        state = "active" if user.is_active else "inactive"
        print(f"{user.email}\t{user.role.value}\t{state}\t{user.organization.name}")
    return 0


def _set_user_active(args: argparse.Namespace) -> int:
    settings = _settings(args)
    change = _with_database(settings, lambda: set_user_active(args.email, active=args.active))
    email = change.user.email
    if not change.changed:
        print(f"{email} is {'active' if args.active else 'inactive'} already.")
    elif args.active:
        print(f"Activated {email}; tokens revoked earlier stay revoked.")
    else:
        print(
            f"Deactivated {email}: {change.sessions_ended} session(s) ended, "
            "their keys and tokens refused."
        )
    return 0


def _set_password(args: argparse.Namespace) -> int:
    settings = _settings(args)
    password = _read_password()
    change = _with_database(settings, lambda: set_password(settings, args.email, password))
    print(f"New password set for {change.user.email}; {change.sessions_ended} session(s) ended.")
    return 0


def _set_role(args: argparse.Namespace) -> int:
    settings = _settings(args)
    new_role = Role(args.role)
    change = _with_database(settings, lambda: set_role(args.email, role=new_role))
    verb = "is" if not change.changed else "is now"
    print(f"{change.user.email} {verb} {new_role.value}.")
    return 0


def _set_subscription(args: argparse.Namespace) -> int:
    settings = _settings(args)
    on = args.workflow_automation == "on"
    org = _with_database(
        settings, lambda: set_subscription(args.organization, workflow_automation=on)
    )
    print(f"Workflow Automation is {args.workflow_automation} for {org.name!r}.")
    return 0


def _disable_inactive_keys(args: argparse.Namespace) -> int:
    from wfa_keys.inactivity import disable_inactive_keys

    settings = _settings(args)
    key_ids = _with_database(settings, disable_inactive_keys)
    print(f"Disabled {len(key_ids)} inactive key(s).")
    for key_id in key_ids:
        print(key_id)
    return 0


def _export_schema(args: argparse.Namespace) -> int:
    from wfa_keys.graphql import export_schema_sdl

    sdl = export_schema_sdl()
    if args.output is None:
        sys.stdout.write(sdl)
        return 0
    try:
        Path(args.output).write_text(sdl, encoding="utf-8")
    except OSError as exc:
        raise CommandError(
            f"cannot write {args.output} ({exc.strerror or type(exc).__name__})"
        ) from None
    return 0
