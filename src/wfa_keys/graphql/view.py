"""The ASGI app serving the schema at ``/graphql`` (POST), and GraphiQL (GET) when enabled."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from uuid import uuid4

import orjson
from cross_web import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.types import ExecutionResult

from wfa_auth import CounterStore, ThrottleStore
from wfa_keys.graphql.context import Context, KeyChanged, Services
from wfa_keys.graphql.errors import ServiceUnavailable
from wfa_keys.graphql.extensions import RETRY_AFTER_UNAVAILABLE, present
from wfa_keys.graphql.graphiql import graphiql_html
from wfa_keys.graphql.schema import ExtensionFactory, Schema, build_schema
from wfa_keys.json_body import LoneSurrogateError, loads_json
from wfa_keys.proxy import parse_ip
from wfa_keys.sessions import COOKIE_NAME, ActiveSession, clear_session_cookie, load_session
from wfa_keys.settings import Settings

logger = logging.getLogger("wfa_keys.graphql")

# orjson leaves these to the caller (TypeError, then the json module as Strawberry has it).
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI view with the service's context: the session from the cookie.

    Only the session cookie authenticates here; API keys never do, so a leaked key cannot
    be used to mint more keys. Queries over GET are off: every operation is a JSON POST.
    """

    def __init__(
        self,
        settings: Settings,
        services: Services,
        extensions: Sequence[ExtensionFactory] = (),
    ) -> None:
        super().__init__(
            build_schema(settings, extensions),
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            allow_queries_via_get=False,
        )
        self.services = services

    def encode_json(self, data: object) -> str | bytes:
        """The answer's bytes, exactly as Strawberry writes them (``json.dumps``, compact).

        An answer of ``data`` alone (no error, no extension) from a schema whose data holds
        no float is written by orjson, ten times as fast for a page of keys: for strings,
        integers, booleans and nulls both write the same bytes, but for characters beyond
        ASCII and DEL, which the json module escapes and orjson does not, so an answer with
        one of them is written again by the json module. Floats (written differently) and
        errors (whose extensions may hold anything) always go to the json module.
        """
        schema = self.schema
        if (
            type(data) is dict
            and len(data) == 1
            and "data" in data
            and isinstance(schema, Schema)
            and schema.data_without_floats
        ):
            try:
                encoded = orjson.dumps(data, option=_ORJSON_OPTIONS)
            except TypeError:  # a type orjson passes through: the json module decides
                pass
            else:
                if encoded.isascii() and b"\x7f" not in encoded:
                    return encoded
        return super().encode_json(data)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        # Our GraphiQL page: nothing copied into the URL or local storage (see graphiql.py).
        return HTMLResponse(graphiql_html(self.services.settings.graphiql_assets_url))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except HTTPException as exc:
            # Strawberry answers these in plain text; clients expect GraphQL's error shape.
            code = exc.code if isinstance(exc, BadInput) else None
            response = refusal(exc.status_code, exc.reason, _request_id(request), code)
        await response(scope, receive, send)

    def decode_json(self, data: str | bytes) -> object:
        try:
            decoded = loads_json(data)
        except UnicodeDecodeError:
            raise BadInput("The request body is not UTF-8") from None
        except LoneSurrogateError:
            # Anywhere (query, operationName, variables) it would fail wherever the text is
            # written out: in an error message naming the operation, say.
            raise BadInput("The request body holds a lone surrogate (\\ud800-\\udfff)") from None
        except RecursionError:
            # json.loads recurses once per nesting level: a body of 50,000 "[" must be
            # refused as what it is, not end in a 500.
            raise HTTPException(400, "The request body is nested too deeply") from None
        # Strawberry assumes an object (or a batch list) and fails with a 500 on anything
        # else, such as a bare JSON string: refuse it as the bad request it is.
        if not isinstance(decoded, dict | list):
            raise HTTPException(400, "The request body must be a JSON object")
        return decoded

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        sub_response = response if isinstance(response, Response) else None
        if sub_response is not None:
            # Responses may carry a Key Secret; no cache may keep any of them.
            sub_response.headers["Cache-Control"] = "no-store"
        context = Context(
            services=self.services,
            request_id=_request_id(request),
            # A parsed address or None: never text a forwarded header made up.
            client_ip=parse_ip(request.client.host) if request.client else None,
            secure=request.url.scheme in {"https", "wss"},
            request=request if isinstance(request, Request) else None,
            response=sub_response,
        )
        context.session = await self._session(request, context)
        return context

    async def _session(self, request: HTTPConnection, context: Context) -> ActiveSession | None:
        session_id = request.cookies.get(COOKIE_NAME)
        if not session_id:
            return None
        try:
            session = await load_session(session_id, self.services.settings)
        except Exception:
            logger.exception("could not load the session (request %s)", context.request_id)
            raise HTTPException(503, ServiceUnavailable.default_message) from None
        if session is None and context.response is not None:
            clear_session_cookie(
                context.response, secure=context.secure, root_path=context.settings.root_path
            )
        return session

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # ErrorPolicy has presented the errors already; this catches errors raised where
        # no extension could see them (e.g. inside another extension).
        if result.errors:
            request_id = _request_id(request)
            result.errors = [present(error, request_id) for error in result.errors]
        return process_result(result)


#: The ``extensions.code`` of each HTTP status Strawberry refuses a request with.
_REFUSAL_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    # The session store (the database) did not answer: fail closed, and say so.
    503: "SERVICE_UNAVAILABLE",
}


class BadInput(HTTPException):
    """A body no GraphQL can come from (not UTF-8, a lone surrogate): 400 ``BAD_USER_INPUT``."""

    code = "BAD_USER_INPUT"

    def __init__(self, reason: str) -> None:
        super().__init__(400, reason)


def refusal(status: int, message: str, request_id: str, code: str | None = None) -> JSONResponse:
    """A request refused before any GraphQL ran, in GraphQL's error shape (``code``, by
    default the status's)."""
    error = {
        # The message may quote the request (an operation's name): never a surrogate here.
        "message": message.encode("utf-8", "backslashreplace").decode("utf-8"),
        "extensions": {
            "code": code or _REFUSAL_CODES.get(status, "BAD_REQUEST"),
            "requestId": request_id,
        },
    }
    headers = {"Cache-Control": "no-store"}
    if status == 405:
        headers["Allow"] = "GET, POST"
    if status == 503:
        headers["Retry-After"] = RETRY_AFTER_UNAVAILABLE
    return JSONResponse({"errors": [error]}, status_code=status, headers=headers)


def _request_id(connection: HTTPConnection) -> str:
    """The ID the request-log middleware gave this request, or a new one."""
    state = connection.scope.setdefault("state", {})
    request_id = state.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        request_id = uuid4().hex
        state["request_id"] = request_id
    return request_id


def create_graphql_app(
    settings: Settings,
    *,
    on_key_changed: KeyChanged | None = None,
    throttle_store: ThrottleStore | None = None,
    extensions: Sequence[ExtensionFactory] = (),
    counter_store: CounterStore | None = None,
) -> GraphQLApp:
    """The GraphQL ASGI app; mount it with ``Route("/graphql", app, methods=["GET", "POST"])``.

    ``on_key_changed(key_id)`` is awaited after every committed change to a key's enabled
    state or secret, and after its deletion, so that caches of the key can be dropped.
    ``throttle_store`` holds the sign-in throttle: pass the store every server process
    shares (database or Redis); by default a :class:`wfa_auth.MemoryThrottleStore`.
    ``extensions`` are schema extensions added after the service's own (metrics).
    ``counter_store`` is the middleware's rate-limit and quota store (``quota.used``).
    """
    services = Services.create(
        settings,
        on_key_changed=on_key_changed,
        throttle_store=throttle_store,
        counters=counter_store,
    )
    return GraphQLApp(settings, services, extensions)
