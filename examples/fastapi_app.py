"""A FastAPI app behind ApiKeyAuthMiddleware, with the memory store (needs ``pip install fastapi``).

    python examples/fastapi_app.py            # prints a demo Key ID and Key Secret once
    curl -H "X-API-Key-ID: $KEY_ID" -H "X-API-Key-Secret: $KEY_SECRET" \\
         http://127.0.0.1:8000/whoami
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from wfa_auth import SCOPE_KEY, ApiKeyAuthMiddleware, Argon2Verifier, MemoryKeyStore

verifier = Argon2Verifier()
store = MemoryKeyStore()
demo_key, demo_secret = store.create_key(
    verifier, name="demo", owner_email="admin@example.com", organization_name="Example"
)

app = FastAPI()
# FastAPI's add_middleware takes the class and its keyword options, as Starlette's does.
app.add_middleware(ApiKeyAuthMiddleware, store=store, verifier=verifier)


@app.get("/whoami")
async def whoami(request: Request) -> dict[str, str]:
    key = request.scope[SCOPE_KEY]
    return {"key_id": key.key_id, "owner": request.user.display_name}


if __name__ == "__main__":
    import uvicorn

    print(f"KEY_ID={demo_key.key_id}\nKEY_SECRET={demo_secret}")
    uvicorn.run(app, host="127.0.0.1", port=8000)
