"""wfa-auth is a distribution of its own: its wheel holds wfa_auth alone and needs three packages.

The wheels are built offline (``--no-build-isolation``, with the hatchling of the test
environment) into a temporary directory, as a user's ``pip install ./middleware`` builds them.
"""

from __future__ import annotations

import ast
import email
import importlib.metadata
import subprocess
import sys
import textwrap
import zipfile
from email.message import Message
from pathlib import Path

import pytest

import wfa_auth

ROOT = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip", "--quiet"]
# What the service needs and the middleware must not: installing wfa-auth brings none of them.
SERVICE_ONLY = ("strawberry", "tortoise", "uvicorn", "asyncpg", "wfa_keys", "fastapi", "pydantic")


def build_wheel(source: Path, into: Path) -> Path:
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(into), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = into.glob("*.whl")
    return wheel


def metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


@pytest.fixture(scope="module")
def middleware_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(ROOT / "middleware", tmp_path_factory.mktemp("wfa-auth-wheel"))


def test_the_wfa_auth_wheel_holds_the_typed_package_and_nothing_else(
    middleware_wheel: Path,
) -> None:
    with zipfile.ZipFile(middleware_wheel) as archive:
        names = archive.namelist()
    packages = {name.split("/")[0] for name in names if not name.startswith("wfa_auth-")}
    assert packages == {"wfa_auth"}
    assert "wfa_auth/py.typed" in names
    assert {"wfa_auth/__init__.py", "wfa_auth/fastapi.py", "wfa_auth/client.py"} <= set(names)
    assert not [name for name in names if "test" in name.lower() or "wfa_keys" in name]


def test_the_wfa_auth_wheel_requires_only_starlette_anyio_and_argon2(
    middleware_wheel: Path,
) -> None:
    info = metadata(middleware_wheel)
    assert (info["Name"], info["Version"]) == ("wfa-auth", wfa_auth.__version__)
    requires = info.get_all("Requires-Dist") or []
    assert sorted(r for r in requires if "extra ==" not in r) == [
        "anyio>=4",
        "argon2-cffi>=25.1",
        "starlette>=1.0",
    ]
    assert sorted(r for r in requires if "extra ==" in r) == [
        "fastapi>=0.165; extra == 'fastapi'",
        "httpx>=0.27; extra == 'client'",
        "httpx>=0.27; extra == 'remote'",
    ]
    assert sorted(info.get_all("Provides-Extra") or []) == ["client", "fastapi", "remote"]


def test_the_installed_wheel_protects_an_app_without_any_service_package(
    middleware_wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            *PIP,
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(middleware_wheel),
        ],
        check=True,
        capture_output=True,
    )
    # Isolated mode (-I): no PYTHONPATH, no working directory, no user site; the service's
    # packages are made unimportable, as in a virtualenv that never installed them.
    script = textwrap.dedent(
        f"""
        import asyncio, importlib.abc, sys
        sys.path.insert(0, {str(target)!r})

        class Absent(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {SERVICE_ONLY!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}")
                return None

        sys.meta_path.insert(0, Absent())
        import httpx
        import wfa_auth
        assert wfa_auth.__file__.startswith({str(target)!r}), wfa_auth.__file__

        async def hello(scope, receive, send):
            await send({{"type": "http.response.start", "status": 200, "headers": []}})
            await send({{"type": "http.response.body", "body": scope["user"].identity.encode()}})

        async def main():
            verifier = wfa_auth.Argon2Verifier(time_cost=1, memory_cost_kib=8, parallelism=1)
            store = wfa_auth.MemoryKeyStore()
            record, secret = store.create_key(
                verifier, name="demo", owner_email="a@example.com", organization_name="Demo"
            )
            app = wfa_auth.ApiKeyAuthMiddleware(hello, store=store, verifier=verifier)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                refused = await client.get("/")
                allowed = await client.get("/", auth=(record.key_id, secret))
            assert refused.status_code == 401, refused
            assert allowed.text == record.key_id, allowed.text
            print("protected")

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "protected"


def test_importing_wfa_auth_loads_neither_fastapi_nor_httpx() -> None:
    code = "import sys, wfa_auth; print(sorted({'fastapi', 'httpx'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT / "middleware",
    )
    assert done.stdout.strip() == "[]"


def test_the_wfa_keys_wheel_leaves_wfa_auth_to_its_own_distribution(tmp_path: Path) -> None:
    wheel = build_wheel(ROOT, tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "wfa_keys/py.typed" in names
    assert not [name for name in names if name.startswith("wfa_auth")]
    info = metadata(wheel)
    requires = info.get_all("Requires-Dist") or []
    # A version range, never a file: URL, so the wheel can be uploaded to a package index.
    assert "wfa-auth<0.4,>=0.3" in requires
    assert not [r for r in requires if "@" in r or "file:" in r]
    assert info["Version"] == importlib.metadata.version("wfa-keys")


@pytest.mark.parametrize(
    ("module", "extra"), [("fastapi.py", {"fastapi"}), ("client.py", {"httpx", "threading"})]
)
def test_each_integration_imports_only_its_own_extra_besides_the_core(
    module: str, extra: set[str]
) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / "middleware" / "wfa_auth" / module).read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    core = {"__future__", "wfa_auth", "starlette", "anyio", "collections", "contextlib"}
    stdlib = {"json", "time", "typing"}
    assert imported <= core | stdlib | extra
