"""Instructions a request of ``bench/graphql.py``'s two cases, counted by callgrind.

Requests per second on a shared machine swing from round to round, and the whole app loses
more to a busy machine than the plain endpoint does; an instruction count does not swing.
This seeds the 10,000 keys of ``bench/graphql.py`` once, then runs each case in-process (the
app as a signed-in admin, ``apiKeys(first: 100)`` with every field; the plain endpoint
sending the same bytes from the same SQL) under ``valgrind --tool=callgrind``, twice: 5 and
35 requests after 10 to warm up. The difference over 30 is one request's instructions in
user space, startup left out (the database's own work on PostgreSQL is another process and
is not counted; on SQLite its thread is). What the app does by the clock meanwhile (the
change feed, the usage flush) is counted too: under valgrind a request lasts fifty times as
long, so both cases carry a share in proportion to their own count, and the ratio holds::

    .venv/bin/python bench/graphql_instructions.py        # a SQLite file, about 10 minutes
    .venv/bin/python bench/graphql_instructions.py --database-url postgres://...

The PostgreSQL database is emptied first: give it one of its own. Needs valgrind.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/graphql.py would shadow the graphql-core package it shares its name
# with: this folder leaves the path, and the benchmark is loaded from its file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from types import ModuleType

from starlette.applications import Starlette
from starlette.routing import Route

from wfa_keys.app import create_app
from wfa_keys.settings import Settings

HERE = Path(__file__).resolve().parent
WARM_UP, FEW, MANY = 10, 5, 35
CASES = ("apiKeys", "plain")


def benchmark() -> ModuleType:
    """``bench/graphql.py``, loaded from its file."""
    spec = importlib.util.spec_from_file_location("wfa_bench_graphql", HERE / "graphql.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settings_for(database_url: str) -> Settings:
    # Under valgrind every step lasts fifty times as long: no deadline may fire.
    return Settings(database_url=database_url, database_timeout=60, request_timeout=300)


async def seed(database_url: str) -> str:
    """The keys of ``bench/graphql.py``; the ID of the admin's organization."""
    bench = benchmark()
    app = create_app(settings_for(database_url))
    async with app.router.lifespan_context(app):
        admin = await bench.seed_keys()
        return str(admin.organization_id)


async def drive(database_url: str, organization_file: Path, case: str, count: int) -> None:
    """``count`` requests of ``case`` after the warm-up."""
    bench = benchmark()
    organization = organization_file.read_text()  # noqa: ASYNC240 - before the app starts
    app = create_app(settings_for(database_url))
    async with app.router.lifespan_context(app):
        if case == "apiKeys":
            cookie = await bench.login(app)
            body = bench.graphql_body(bench.LIST, first=bench.PAGE)
            target, method, path = app, "POST", "/graphql"
        else:
            endpoint = bench.plain_endpoint(organization)
            target = Starlette(routes=[Route("/keys", endpoint, methods=["GET"])])
            cookie, body, method, path = None, b"", "GET", f"/keys?first={bench.PAGE}"
        for _ in range(WARM_UP + count):
            status, answer, _ = await bench.call(target, method, path, body, cookie)
            assert status == 200, answer[:300]


def instructions(valgrind: str, database_url: str, folder: Path, case: str, count: int) -> int:
    out = folder / f"callgrind.{case}.{count}"
    command = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}"]
    command += [f"--log-file={folder / 'valgrind.log'}", sys.executable, "-P", __file__]
    command += ["--drive", case, str(count), "--database-url", database_url]
    command += ["--organization-file", str(folder / "organization")]
    # Bounded: one PostgreSQL run once sat idle in its last step (a rerun took a minute).
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=1200)
    found = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit(f"no summary in {out}")
    return int(found.group(1))


def measure(database_url: str, folder: Path) -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    (folder / "organization").write_text(asyncio.run(seed(database_url)))
    per_request = {}
    for case in CASES:
        few, many = (instructions(valgrind, database_url, folder, case, n) for n in (FEW, MANY))
        per_request[case] = (many - few) / (MANY - FEW)
        print(f"{case:>7}: {per_request[case]:,.0f} instructions a request", flush=True)
    ratio = per_request["plain"] / per_request["apiKeys"]
    print(f"plain endpoint / apiKeys(first: 100), in instructions: {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: a new SQLite file")
    parser.add_argument("--drive", nargs=2, metavar=("CASE", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--organization-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.pop("WFA_DATABASE_URL", None)
    if args.drive:
        case, count = args.drive
        asyncio.run(drive(args.database_url, args.organization_file, case, int(count)))
        return
    with tempfile.TemporaryDirectory(prefix="wfa-bench-instructions-") as tmp:
        folder = Path(tmp)
        measure(args.database_url or f"sqlite://{folder / 'bench.sqlite3'}", folder)


if __name__ == "__main__":
    main()
