"""A Starlette app behind ApiKeyAuthMiddleware, with the memory store.

    python examples/starlette_app.py          # prints a demo Key ID and Key Secret once
    curl -u "$KEY_ID:$KEY_SECRET" http://127.0.0.1:8000/whoami
    curl -X POST http://127.0.0.1:8000/v1/auth/api-key/token \\
         -H 'Content-Type: application/json' \\
         -d '{"key_id": "'$KEY_ID'", "key_secret": "'$KEY_SECRET'"}'
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wfa_auth import SCOPE_KEY, ApiKeyAuthMiddleware, Argon2Verifier, MemoryKeyStore

verifier = Argon2Verifier()
store = MemoryKeyStore()
demo_key, demo_secret = store.create_key(
    verifier, name="demo", owner_email="admin@example.com", organization_name="Example"
)


@requires("authenticated")
async def whoami(request: Request) -> JSONResponse:
    key = request.scope[SCOPE_KEY]
    return JSONResponse({"key_id": key.key_id, "owner": request.user.display_name})


app = Starlette(
    routes=[Route("/whoami", whoami)],
    middleware=[Middleware(ApiKeyAuthMiddleware, store=store, verifier=verifier)],
)

if __name__ == "__main__":
    import uvicorn

    # A throwaway key of this demo process, shown once as the real service does.
    print(f"KEY_ID={demo_key.key_id}\nKEY_SECRET={demo_secret}")
    uvicorn.run(app, host="127.0.0.1", port=8000)
