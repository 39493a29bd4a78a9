"""A FastAPI app protected by wfa_auth's dependency, with the memory store.

Needs ``pip install ./middleware fastapi uvicorn`` (or ``wfa-auth[fastapi]``).

    python examples/fastapi_app.py            # prints a demo Key ID and Key Secret once
    curl -u "$KEY_ID:$KEY_SECRET" http://127.0.0.1:8000/whoami
    curl http://127.0.0.1:8000/docs           # public, and shows the four ways to authenticate
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Request, Security

from wfa_auth import Argon2Verifier, KeyRecord, MemoryKeyStore
from wfa_auth.fastapi import ApiKeySecurity

verifier = Argon2Verifier()
store = MemoryKeyStore()
demo_key, demo_secret = store.create_key(
    verifier, name="demo", owner_email="admin@example.com", organization_name="Example"
)

# The five lines that protect an app: the dependency, its lifespan, the token exchange, and
# Security(auth) on each route that needs a key.
auth = ApiKeySecurity(store=store, verifier=verifier)
app = FastAPI(title="Workflow Automation API (example)", lifespan=auth.lifespan)
app.include_router(auth.token_router)


@app.get("/whoami")
async def whoami(request: Request, key: Annotated[KeyRecord, Security(auth)]) -> dict[str, str]:
    return {"key_id": key.key_id, "owner": request.user.display_name}


@app.get("/members")
async def members(
    key: Annotated[KeyRecord, Security(auth, scopes=["authenticated"])],
) -> dict[str, str]:
    """Needs the ``authenticated`` scope, which the middleware grants every valid key."""
    return {"organization": key.organization_name}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Public: no Security(auth), so no key needed (as for /docs and /openapi.json)."""
    return {"status": "ok"}


if __name__ == "__main__":
    import uvicorn

    print(f"KEY_ID={demo_key.key_id}\nKEY_SECRET={demo_secret}")
    uvicorn.run(app, host="127.0.0.1", port=8000)
