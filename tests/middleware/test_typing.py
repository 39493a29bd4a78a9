"""A downstream project type-checks its use of wfa_auth with ``mypy --strict``.

mypy runs as a user's would: in a directory of its own, on a file that imports the installed
wfa_auth (its ``py.typed`` marker is what makes mypy read the annotations instead of ``Any``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

DOWNSTREAM = textwrap.dedent(
    """
    from typing import Annotated

    import httpx
    from fastapi import FastAPI, Security

    from wfa_auth import KeyRecord, MemoryKeyStore
    from wfa_auth.client import WfaKeyAuth
    from wfa_auth.fastapi import ApiKeySecurity

    auth = ApiKeySecurity(store=MemoryKeyStore())
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.token_router)


    @app.get("/whoami")
    async def whoami(key: Annotated[KeyRecord, Security(auth)]) -> dict[str, str]:
        return {"key_id": key.key_id}


    def call(key_id: str, key_secret: str) -> int:
        with httpx.Client(auth=WfaKeyAuth(key_id, key_secret)) as client:
            return client.get("https://api.example/whoami").status_code
    """
)


def mypy(directory: Path, source: str) -> subprocess.CompletedProcess[str]:
    (directory / "downstream.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "downstream.py"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )


def test_strict_mypy_accepts_a_downstream_app_and_client_and_sees_the_real_types(
    tmp_path: Path,
) -> None:
    # One deliberate mistake: with wfa_auth typed, it is the only error; were wfa_auth seen
    # as Any (no py.typed), mypy would report the import and miss the mistake.
    mistake = "\n\ndef count(key: KeyRecord) -> int:\n    return key.key_id\n"
    done = mypy(tmp_path, DOWNSTREAM + mistake)
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'Incompatible return value type (got "str", expected "int")' in done.stdout
    assert "Found 1 error in 1 file" in done.stdout, done.stdout
