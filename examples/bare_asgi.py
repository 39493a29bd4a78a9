"""A bare ASGI callable wrapped in ApiKeyAuthMiddleware, with the memory store.

python examples/bare_asgi.py              # prints a demo Key ID and Key Secret once
curl -u "$KEY_ID:$KEY_SECRET" http://127.0.0.1:8000/
"""

from __future__ import annotations

import json

from starlette.types import Receive, Scope, Send

from wfa_auth import SCOPE_KEY, ApiKeyAuthMiddleware, Argon2Verifier, MemoryKeyStore


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers every HTTP request with the caller's Key ID; reached only when authenticated."""
    if scope["type"] != "http":
        return
    body = json.dumps({"key_id": scope[SCOPE_KEY].key_id}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


verifier = Argon2Verifier()
store = MemoryKeyStore()
demo_key, demo_secret = store.create_key(
    verifier, name="demo", owner_email="admin@example.com", organization_name="Example"
)
app = ApiKeyAuthMiddleware(hello, store=store, verifier=verifier)

if __name__ == "__main__":
    import uvicorn

    print(f"KEY_ID={demo_key.key_id}\nKEY_SECRET={demo_secret}")
    uvicorn.run(app, host="127.0.0.1", port=8000)
