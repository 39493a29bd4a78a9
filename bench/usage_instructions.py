"""Instructions a warm call of a limited key costs, against the same key without limits.

The in-process counterpart of ``bench/usage.py``'s first two parts, counted by callgrind, so
that it holds on a busy machine: each case runs ``bench/usage.py``'s warm calls (the API's
middleware as ``create_api`` mounts it, called directly, its background tasks running) in
a process of its own under ``valgrind --tool=callgrind``, and only the ``--calls`` warm
calls are counted (collection is switched on and off around them by a callgrind client
request, from a few lines of C built here with ``cc``). Cases:

- ``nocalls``: a key without limits, no call analytics (what analytics cost is the next
  one's difference);
- ``plain``: a key without limits, analytics counted (to a sink that keeps nothing);
- ``database``: a key with a rate limit and a quota (see ``LIMITS``), the database counter
  store;
- ``redis``: the same with the Redis counter store (``--redis``).

It prints each count and the ratios (targets: limited / plain 0.85 with the database, 0.8
with Redis)::

    .venv/bin/python -P bench/usage_instructions.py postgres://postgres@127.0.0.1:5432/wfa_bench \\
        --redis redis://127.0.0.1:6379/5

Needs valgrind (with its headers: Debian's ``valgrind`` package) and a C compiler.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import importlib
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASES = ("nocalls", "plain", "database", "redis")
# A day's window, where bench/usage.py has a minute's: a lease lasts a slot (a tenth of the
# window) and a new slot costs one store call (a transaction), once in 6 s for a minute's
# window, every few hundred calls at callgrind's pace. A day's slot outlasts the count, so
# what is counted is the warm path alone; at full speed a minute's window adds one store
# call in some 400,000 calls.
LIMITS = {
    "rate_limit_requests": 1_000_000,
    "rate_limit_per_seconds": 86_400,
    "quota_requests": 1_000_000_000,
    "quota_period": "month",
}
TOGGLE_C = "#include <valgrind/callgrind.h>\nvoid toggle(void) { CALLGRIND_TOGGLE_COLLECT; }\n"
REDIS_PREFIX = "wfa-keys:bench-instructions:"


async def drive(case: str, calls: int, database_url: str, redis_url: str, toggle: str) -> None:
    """``calls`` warm calls of the case's key, counted between two toggles."""
    sys.path.append(str(HERE))  # last: bench/graphql.py must not hide the graphql package
    # Imported by name: this folder is put on the path here, not known to mypy.
    usage = importlib.import_module("usage")
    from wfa_keys.api import create_api
    from wfa_keys.counters import DatabaseCounterStore, RedisCounterStore
    from wfa_keys.db import close_global, open_global

    await open_global(database_url)
    redis = RedisCounterStore.from_url(redis_url, prefix=REDIS_PREFIX) if case == "redis" else None
    try:
        owner = await usage.warm_owner()
        api = create_api(
            usage.SETTINGS,
            counter_store=redis if redis is not None else DatabaseCounterStore(),
            call_sink=None if case == "nocalls" else usage.NullSink(),
            # The caches' timer stands still (a C call, as time.monotonic is): under
            # callgrind on a busy machine the calls outlast the record cache's 5 s, and a
            # key checked again in the counted calls (a database read) added thousands of
            # instructions a call to one case and not the other.
            timer=itertools.repeat(time.monotonic()).__next__,
        )
        limits: dict[str, Any] = LIMITS if case in ("database", "redis") else {}
        scope = usage._scope(*await usage._key(owner, **limits))
        switch = ctypes.CDLL(toggle).toggle
        async with api.running():
            await usage._calls_per_second(api, scope, 300)  # verified, leases taken
            switch()
            await usage._calls_per_second(api, scope, calls)
            switch()
    finally:
        if redis is not None:
            keys = await redis.client.keys(REDIS_PREFIX + "*")
            if keys:
                await redis.client.delete(*keys)
            await redis.aclose()
        await close_global()


def count(case: str, args: argparse.Namespace, toggle: Path, out: Path) -> float:
    """One warm call's instructions in ``case``, from a callgrind run of its own."""
    command = ["valgrind", "--tool=callgrind", "--collect-atstart=no"]
    command += [f"--callgrind-out-file={out}", sys.executable, "-P", __file__, args.database_url]
    command += ["--drive", case, str(args.calls), args.redis or "", str(toggle)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=3600)
    found = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit(f"no summary in {out}")
    calls: int = args.calls
    return int(found.group(1)) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("--redis", default=None, help="a redis:// URL for the Redis case")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--drive", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        case, calls, redis_url, toggle = args.drive
        asyncio.run(drive(case, int(calls), args.database_url, redis_url, toggle))
        return
    per_call: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="wfa-usage-callgrind-") as tmp:
        folder = Path(tmp)
        (folder / "toggle.c").write_text(TOGGLE_C)
        toggle = folder / "toggle.so"
        subprocess.run(
            ["cc", "-O2", "-shared", "-fPIC", "-o", str(toggle), str(folder / "toggle.c")],
            check=True,
        )
        for case in CASES:
            if case == "redis" and not args.redis:
                continue
            per_call[case] = count(case, args, toggle, folder / f"callgrind.{case}")
            print(f"{case:>9}: {per_call[case]:9,.0f} instructions a call", flush=True)
    print()
    print(f"analytics: {per_call['plain'] - per_call['nocalls']:,.0f} instructions a call")
    for case in ("database", "redis"):
        if case in per_call:
            print(f"plain / {case:<8}: {per_call['plain'] / per_call[case]:.3f}")


if __name__ == "__main__":
    main()
