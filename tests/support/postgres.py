"""The PostgreSQL databases the suite may create and drop, all named from one setting.

``WFA_TEST_DATABASE_URL`` names the suite's database (``postgres://.../wfa_test``); the tests
that need a database of their own (an empty one to migrate, one to cut away under a server)
create ``<name>_<purpose>`` beside it and drop it afterwards. On a SQLite run (the variable
unset) those few tests use the local PostgreSQL with the name ``wfa_test``. Two suites at
once on one server need two names: set the variable.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

__all__ = ["DEFAULT_POSTGRES_URL", "SCRATCH_PURPOSES", "postgres_url", "scratch_database"]

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/wfa_test"
#: Every ``<name>_<purpose>`` a test creates; the end-of-session check looks for each.
SCRATCH_PURPOSES = ("outage", "upgrade")


def postgres_url() -> str:
    """``WFA_TEST_DATABASE_URL`` when it names PostgreSQL, else the local default."""
    url = os.environ.get("WFA_TEST_DATABASE_URL", "")
    return url if url.startswith("postgres") else DEFAULT_POSTGRES_URL


def scratch_database(purpose: str) -> tuple[str, str]:
    """(URL of the server's ``postgres`` database, name of the scratch database)."""
    assert purpose in SCRATCH_PURPOSES, purpose
    parts = urlsplit(postgres_url())
    name = f"{parts.path.lstrip('/') or 'wfa_test'}_{purpose}"
    return parts._replace(path="/postgres").geturl(), name
