"""Known devices: the signed device cookie, and how it spares an admin others' failures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from tortoise.context import TortoiseContext

from support.clock import MonotonicClock
from support.gql import LOGIN, PASSWORD, Api, only_error_code
from support.keys import CountingVerifier
from support.settings import cheap_settings
from wfa_auth import MemoryThrottleStore
from wfa_keys.devices import DEVICE_COOKIE_NAME, DeviceCookies, shared_secret
from wfa_keys.graphql import GraphQLApp
from wfa_keys.graphql.context import Services
from wfa_keys.models import ServerSecret, User
from wfa_keys.settings import Settings

EMAIL = "admin@acme.example"
OFFICE = "203.0.113.7"
MakeClient = Callable[..., Api]
UserFactory = Callable[..., Awaitable[User]]


@pytest.fixture
def settings() -> Settings:
    return cheap_settings(
        login_max_failures_per_email_ip=3, login_max_failures_per_ip=5, login_window=900
    )


@pytest.fixture
def gql_app(settings: Settings) -> GraphQLApp:
    services = Services.create(
        settings,
        hasher=CountingVerifier(),
        throttle_store=MemoryThrottleStore(clock=MonotonicClock()),
    )
    return GraphQLApp(settings, services)


async def attempt(api: Api, email: str = EMAIL, password: str = PASSWORD) -> str | None:
    body = await api(LOGIN, email=email, password=password)
    return only_error_code(body) if "errors" in body else None


def device_cookie(api: Api) -> str | None:
    return api.client.cookies.get(DEVICE_COOKIE_NAME)


async def flood(api: Api) -> None:
    """Others behind the office's address: a spray of emails and guesses at the admin's."""
    for n in range(8):
        await attempt(api, email=f"u{n}@spray.example", password="guess")
    for _ in range(5):
        await attempt(api, password="guess")


async def test_a_sign_in_sets_an_httponly_device_cookie_naming_the_user(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    user = await make_user(EMAIL)
    api = make_client(client_ip=OFFICE)

    response = await api.post(LOGIN, email=EMAIL, password=PASSWORD)

    [header] = [
        h for h in response.headers.get_list("set-cookie") if h.startswith(DEVICE_COOKIE_NAME)
    ]
    assert "httponly" in header.lower()
    assert "max-age=7776000" in header.lower()
    value = device_cookie(api)
    assert value is not None
    assert value.startswith(f"{user.id}.")


async def test_an_admin_on_a_known_device_is_not_locked_out_by_others_at_the_same_address(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    await make_user(EMAIL)
    admin = make_client(client_ip=OFFICE)
    assert await attempt(admin) is None
    others = make_client(client_ip=OFFICE)

    await flood(others)

    # A fresh browser at the address is refused; the admin's own browser is not.
    assert await attempt(make_client(client_ip=OFFICE)) == "RATE_LIMITED"
    assert await attempt(admin) is None


async def test_a_known_device_gets_no_more_guesses_than_an_address(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    await make_user(EMAIL)
    browser = make_client(client_ip=OFFICE)
    assert await attempt(browser) is None

    codes = [await attempt(browser, password="guess") for _ in range(4)]

    assert codes == ["UNAUTHENTICATED"] * 3 + ["RATE_LIMITED"]
    # Even the right password waits for the window, as from a fresh address.
    assert await attempt(browser) == "RATE_LIMITED"


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda value: value[:-2] + ("AA" if not value.endswith("AA") else "BB"),
        lambda value: value.replace(".", ".9", 2).replace(".9", ".", 1),
        lambda value: "x" + value,
        lambda value: value + ".extra",
    ],
)
async def test_a_tampered_device_cookie_counts_for_nothing(
    make_client: MakeClient, make_user: UserFactory, corrupt: Callable[[str], str]
) -> None:
    await make_user(EMAIL)
    admin = make_client(client_ip=OFFICE)
    assert await attempt(admin) is None
    value = device_cookie(admin)
    assert value is not None
    admin.client.cookies.clear()
    admin.client.cookies.set(DEVICE_COOKIE_NAME, corrupt(value))

    await flood(make_client(client_ip=OFFICE))

    assert await attempt(admin) == "RATE_LIMITED"


async def test_the_device_cookie_of_another_account_counts_for_nothing(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    await make_user(EMAIL)
    await make_user("colleague@acme.example")
    browser = make_client(client_ip=OFFICE)
    assert await attempt(browser, email="colleague@acme.example") is None

    await flood(make_client(client_ip=OFFICE))

    assert await attempt(browser) == "RATE_LIMITED"


async def test_an_expired_device_cookie_counts_for_nothing(
    db: TortoiseContext, settings: Settings, make_user: UserFactory
) -> None:
    user = await make_user(EMAIL)
    now = [1_000_000.0]
    cookies = DeviceCookies(settings, clock=lambda: now[0])
    value = await cookies.issue(user)
    known = await cookies.read(value)
    assert known is not None
    assert known.user_id == str(user.id)

    now[0] += settings.device_cookie_days * 86400

    assert await cookies.read(value) is None


async def test_every_process_signs_with_one_secret_created_once(
    db: TortoiseContext, settings: Settings, make_user: UserFactory
) -> None:
    user = await make_user(EMAIL)
    # Two processes: two instances, each reading the secret from the database.
    first, second = DeviceCookies(settings), DeviceCookies(settings)

    value = await first.issue(user)

    assert await second.read(value) is not None
    assert await ServerSecret.all().count() == 1
    assert await shared_secret("device-cookie") == (await ServerSecret.get()).value


async def test_device_cookies_can_be_switched_off(
    db: TortoiseContext, make_user: UserFactory
) -> None:
    user = await make_user(EMAIL)
    on = DeviceCookies(cheap_settings())
    off = DeviceCookies(cheap_settings(device_cookie_days=0))

    assert not off.enabled
    assert await off.read(await on.issue(user)) is None
