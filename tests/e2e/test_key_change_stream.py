"""``GET /api/v1/keys/changes`` from a real ``wfa-keys serve``: events, resumption, isolation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from tortoise.context import TortoiseContext
from tortoise.transactions import in_transaction

from support.service_console import EMAIL, ENABLE, ENV, LOGIN, PASSWORD, Console, basic
from support.serving import Server, start_server
from wfa_keys.changes import publish_key_change, publish_keys_change
from wfa_keys.db import database
from wfa_keys.models import ApiKey, KeyChange

pytestmark = pytest.mark.e2e

CHANGES = "/api/v1/keys/changes"
EVENT_TIMEOUT = 10.0
OTHER_ORG = "00000000-0000-0000-0000-0000000000aa"


@pytest.fixture
async def console(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> AsyncIterator[Console]:
    server = start_server(tmp_path, e2e_database_url, env=ENV)
    servers.append(server)
    admin = Console(server.base_url)
    await admin.graphql(LOGIN, e=EMAIL, p=PASSWORD)
    admin.server = server  # type: ignore[attr-defined]
    yield admin
    await admin.http.aclose()


Event = tuple[str, Any, str | None]


class Stream:
    """An open stream, read event by event."""

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, skip_heartbeats: bool = True) -> Event:
        async with asyncio.timeout(EVENT_TIMEOUT):
            while True:
                name, data, event_id = "message", "", None
                async for line in self._lines:
                    if line == "":
                        if data:
                            break
                        continue
                    field, _, value = line.partition(": ")
                    if field == "event":
                        name = value
                    elif field == "data":
                        data = value
                    elif field == "id":
                        event_id = value
                else:
                    raise EOFError("the stream ended")
                if name == "heartbeat" and skip_heartbeats:
                    continue
                return name, json.loads(data), event_id


@asynccontextmanager
async def stream(
    console: Console, headers: dict[str, str], last_event_id: str | None = None
) -> AsyncIterator[Stream]:
    if last_event_id is not None:
        headers = {**headers, "Last-Event-ID": last_event_id}
    async with console.http.stream("GET", CHANGES, headers=headers) as response:
        assert response.status_code == 200
        yield Stream(response)


async def test_each_change_is_one_event_and_the_stream_resumes_from_its_last_id(
    console: Console,
) -> None:
    verifier = basic(*await console.create(scopes=["keys:verify"]))
    key_id, _secret = await console.create()
    async with console.http.stream("GET", CHANGES, headers=verifier) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events = Stream(response)
        name, data, _ = await events.next()
        assert (name, data) == ("ready", {"resumed": False})
        await console.graphql(ENABLE, id=key_id, on=False)
        name, data, last_id = await events.next()
        assert (name, data) == ("key_changed", {"key_id": key_id, "kind": "disabled"})
        assert last_id is not None
        heartbeat = await events.next(skip_heartbeats=False)
        assert heartbeat[0] == "heartbeat"
    # Changes made while disconnected arrive on reconnection with Last-Event-ID.
    await console.graphql(ENABLE, id=key_id, on=True)
    async with stream(console, verifier, last_id) as events:
        assert await events.next() == ("ready", {"resumed": True}, last_id)
        name, data, _ = await events.next()
        assert (name, data) == ("key_changed", {"key_id": key_id, "kind": "enabled"})
    # The client hanging up is no error: each stream is logged once, as a 200.
    server: Server = console.server  # type: ignore[attr-defined]
    await asyncio.sleep(0.5)  # the log lines are written off the request's path
    assert server.stderr.count('"route":"/api/v1/keys/changes","status":200') == 2
    assert '"level":"ERROR"' not in server.stderr


async def test_a_position_the_service_cannot_resume_from_is_a_reset(console: Console) -> None:
    verifier = basic(*await console.create(scopes=["keys:verify"]))
    key_id, _ = await console.create()
    await console.graphql(ENABLE, id=key_id, on=False)
    async with stream(console, verifier, "999999") as events:
        assert (await events.next())[:2] == ("ready", {"resumed": False})
        assert (await events.next())[:2] == ("reset", {"reason": "cannot_resume"})


async def test_another_organizations_changes_never_reach_the_stream(
    console: Console, e2e_database_url: str
) -> None:
    verifier = basic(*await console.create(scopes=["keys:verify"]))
    key_id, _ = await console.create()
    async with stream(console, verifier) as events:
        await events.next()
        async with database(e2e_database_url, migrate=False), in_transaction():
            await publish_key_change(
                "wfak_other_organization_key",
                organization_id="00000000-0000-0000-0000-0000000000aa",
            )
        await console.graphql(ENABLE, id=key_id, on=False)
        # The first event is this organization's: the other one was never sent.
        name, data, _ = await events.next()
        assert (name, data["key_id"]) == ("key_changed", key_id)
    async with database(e2e_database_url, migrate=False):
        assert await KeyChange.filter(key_id="wfak_other_organization_key").exists()


async def test_a_subscription_turned_off_is_every_key_of_the_organization(
    console: Console, tmp_path: Path, e2e_database_url: str
) -> None:
    verifier = basic(*await console.create(scopes=["keys:verify"]))
    async with stream(console, verifier) as events:
        await events.next()
        from wfa_keys.users import set_subscription

        async with database(e2e_database_url, migrate=False):
            await set_subscription("Default organization", workflow_automation=False)
        name, data, _ = await events.next()
        assert (name, data) == ("keys_changed", {"key_id": None, "kind": "subscription_off"})


async def test_a_batch_of_the_inactivity_sweep_is_one_event_for_the_organization(
    console: Console, e2e_database_url: str
) -> None:
    verifier = basic(*await console.create(scopes=["keys:verify"]))
    key_id, _ = await console.create()
    async with stream(console, verifier) as events:
        await events.next()
        async with database(e2e_database_url, migrate=False):
            organization_id = (await ApiKey.get(key_id=key_id)).organization_id
            async with in_transaction():
                await publish_keys_change(
                    [key_id, "wfak_another_idle_key"],
                    organization_id=organization_id,
                    kind="auto_disabled",
                )
        # One event for the batch (a batch holds up to 5,000 keys): drop the organization's.
        name, data, _ = await events.next()
        assert (name, data) == ("keys_changed", {"key_id": None, "kind": "auto_disabled"})


async def test_a_key_without_keys_verify_may_not_follow_the_stream(console: Console) -> None:
    plain = basic(*await console.create())
    response = await console.http.get(CHANGES, headers=plain)
    assert response.status_code == 403
    assert response.json()["scope"] == "keys:verify"


async def test_streams_end_when_the_server_stops_and_leave_no_error(console: Console) -> None:
    server: Server = console.server  # type: ignore[attr-defined]
    verifier = basic(*await console.create(scopes=["keys:verify"]))
    async with stream(console, verifier) as events:
        await events.next()
        loop = asyncio.get_running_loop()
        stopping = loop.run_in_executor(None, server.stop)
        with pytest.raises((EOFError, httpx2.TransportError)):
            await events.next()
        # uvicorn re-raises SIGTERM (-15) after a clean end; a server still waiting for the
        # stream would have been killed (-9).
        assert await stopping == -15
    assert "Application shutdown complete" in server.stderr
    assert '"level":"ERROR"' not in server.stderr


async def test_a_key_reaching_its_expiry_is_announced(
    console: Console, e2e_database_url: str
) -> None:
    verifier = basic(*await console.create(scopes=["keys:verify"]))
    key_id, _ = await console.create()
    async with stream(console, verifier) as events:
        await events.next()
        # Nothing is written when the time comes: the feed looks for it.
        async with database(e2e_database_url, migrate=False):
            await ApiKey.filter(key_id=key_id).update(
                expires_at=datetime.now(UTC) + timedelta(seconds=1.5)
            )
        name, data, _ = await events.next()
        assert (name, data) == ("key_changed", {"key_id": key_id, "kind": "expired"})
