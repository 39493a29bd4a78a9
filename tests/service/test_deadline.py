"""A request the app cannot answer in time gets a 503 from the request log's deadline."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx2
from starlette.types import Message, Receive, Scope, Send

from wfa_keys.deadline import Deadline, DeadlineWatch
from wfa_keys.logs import RequestLogMiddleware


class Stuck:
    """An app waiting on a database that stopped answering, then failing, then answering."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.finished = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"too late"})
            raise TimeoutError("the statement timed out")
        finally:
            self.finished.set()


def _client(app: RequestLogMiddleware) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://test")


async def test_a_request_not_answered_in_time_gets_503_with_retry_after_and_a_code() -> None:
    stuck = Stuck()
    app = RequestLogMiddleware(stuck, deadline=Deadline(0.2, retry_after=7))
    sent: list[tuple[float, Message]] = []
    answered = asyncio.Event()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append((time.monotonic(), message))
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    scope: Scope = {"type": "http", "method": "GET", "path": "/api/v1/whoami", "headers": []}
    started = time.monotonic()
    request = asyncio.create_task(app(scope, receive, send))
    # The server sends the answer on as it comes, while the app still waits.
    await asyncio.wait_for(answered.wait(), timeout=3)
    stuck.release.set()
    await request  # the app's late error is this request's log line only: nothing raised

    (start_at, start), (_, body) = sent
    assert start_at - started < 2
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"retry-after"] == b"7"
    assert headers[b"x-request-id"]
    # What the app sent afterwards was dropped.
    assert json.loads(body["body"]) == {
        "error": "service_unavailable",
        "message": "The service is unavailable. Try again later.",
    }


async def test_the_graphql_endpoint_gets_the_deadline_answer_in_graphqls_error_shape() -> None:
    stuck = Stuck()
    app = RequestLogMiddleware(stuck, deadline=Deadline(0.1))
    async with _client(app) as client:
        request = asyncio.create_task(client.post("/graphql", json={"query": "{ me { id } }"}))
        await asyncio.wait({request}, timeout=3)
        stuck.release.set()
        response = await request

    assert response.status_code == 503
    assert response.json()["data"] is None
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["SERVICE_UNAVAILABLE"]


async def test_an_answer_in_time_is_untouched_by_the_deadline() -> None:
    async def quick(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.3)  # a slow body after a prompt start: no deadline then
        await send({"type": "http.response.body", "body": b"ok"})

    app = RequestLogMiddleware(quick, deadline=Deadline(0.1))
    async with _client(app) as client:
        response = await client.get("/")

    assert response.status_code == 200
    assert response.text == "ok"


async def test_one_timer_expires_each_request_in_flight_in_time_and_no_other() -> None:
    watch = DeadlineWatch(0.1)
    expired: dict[str, float] = {}
    started: dict[str, float] = {}

    def request(name: str) -> Callable[[], None]:
        def expire() -> None:
            expired[name] = time.monotonic()

        started[name] = time.monotonic()
        watch.add(expire, started[name])
        return expire

    first = request("first")
    timer = watch._timer
    await asyncio.sleep(0.03)
    answered = request("answered")
    await asyncio.sleep(0.03)
    request("third")
    assert watch._timer is timer  # set once, for the oldest
    watch.discard(answered)
    watch.discard(first)  # answered before its time, after the timer was set for it
    await asyncio.sleep(0.25)

    assert list(expired) == ["third"]
    assert 0.1 <= expired["third"] - started["third"] < 0.2
    assert watch._timer is None  # nothing left in flight: nothing set
