"""Admin sessions: sign-in, cookie, timeouts, logout and deactivation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from support.gql import LOGIN, PASSWORD, Api, only_error_code
from support.settings import cheap_settings
from wfa_keys import sessions
from wfa_keys.crypto import sha256_hex
from wfa_keys.models import AuditAction, AuditEvent, Role, Session, User
from wfa_keys.sessions import COOKIE_NAME, REFRESH_INTERVAL, load_session, start_session
from wfa_keys.settings import Settings

ME = "{ me { email } }"
LOGOUT = "mutation { logout }"
EMAIL = "admin@acme.example"

MakeClient = Callable[..., Api]
UserFactory = Callable[..., Awaitable[User]]


def session_cookie(api: Api) -> str:
    value = api.client.cookies.get(COOKIE_NAME)
    assert value, "no session cookie"
    return value


def set_cookie_header(response_headers: list[str]) -> str:
    [header] = [h for h in response_headers if h.startswith(f"{COOKIE_NAME}=")]
    return header


async def test_login_sets_an_httponly_lax_cookie_for_the_whole_site(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    await make_user(EMAIL)
    api = make_client()

    response = await api.post(LOGIN, email=EMAIL, password=PASSWORD)

    header = set_cookie_header(response.headers.get_list("set-cookie")).lower()
    assert "httponly" in header
    assert "samesite=lax" in header
    assert "path=/" in header
    assert "secure" not in header
    assert response.json()["data"]["login"]["email"] == EMAIL


@pytest.mark.parametrize(
    "settings", [cheap_settings(database_url="unused-by-these-tests", root_path="/keys")]
)
async def test_under_a_root_path_the_cookie_is_set_and_cleared_for_that_path_only(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    await make_user(EMAIL)
    api = make_client()

    login = await api.post(LOGIN, email=EMAIL, password=PASSWORD)
    logout = await api.post(LOGOUT)

    for response in (login, logout):
        header = set_cookie_header(response.headers.get_list("set-cookie")).lower()
        assert "; path=/keys" in header, header
    assert "max-age=0" in set_cookie_header(logout.headers.get_list("set-cookie")).lower()


async def test_cookie_is_secure_over_https(make_client: MakeClient, make_user: UserFactory) -> None:
    await make_user(EMAIL)
    api = make_client(base_url="https://testserver")

    response = await api.post(LOGIN, email=EMAIL, password=PASSWORD)

    assert "; secure" in set_cookie_header(response.headers.get_list("set-cookie")).lower()


async def test_session_id_is_random_and_stored_only_as_its_hash(admin: Api) -> None:
    session_id = session_cookie(admin)

    rows = await Session.all().values()
    assert [row["id_hash"] for row in rows] == [sha256_hex(session_id)]
    assert session_id not in str(rows)
    # 32 random bytes in URL-safe base64: 256 bits.
    assert len(session_id) >= 43


async def test_login_records_success_with_the_client_address(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    await make_user(EMAIL)
    api = make_client(client_ip="203.0.113.7")

    await api.login(EMAIL)

    [event] = await AuditEvent.all()
    assert event.action == AuditAction.LOGIN_SUCCEEDED
    assert event.actor_email == EMAIL
    assert event.client_ip == "203.0.113.7"


async def test_email_is_case_insensitive(make_client: MakeClient, make_user: UserFactory) -> None:
    await make_user(EMAIL)
    api = make_client()

    body = await api.login("  Admin@ACME.example ")

    assert body["data"]["login"]["email"] == EMAIL


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    await make_user(EMAIL)
    api = make_client()

    wrong_password = await api.post(LOGIN, email=EMAIL, password="not the password")
    unknown_email = await api.post(LOGIN, email="nobody@acme.example", password=PASSWORD)

    assert wrong_password.json() == unknown_email.json()
    assert only_error_code(wrong_password.json()) == "UNAUTHENTICATED"
    for response in (wrong_password, unknown_email):
        assert "set-cookie" not in response.headers
    assert await Session.all().count() == 0
    events = await AuditEvent.all().order_by("id")
    assert [event.action for event in events] == [AuditAction.LOGIN_FAILED] * 2
    assert "not the password" not in str(await AuditEvent.all().values())


@pytest.mark.parametrize(
    "email", ["admin@acme.example\x00", "admin@acme.example\x1b", "a" * 300 + "@acme.example"]
)
async def test_an_email_no_user_can_have_is_a_wrong_login_not_an_error(
    make_client: MakeClient, make_user: UserFactory, email: str
) -> None:
    await make_user(EMAIL)
    api = make_client()

    body = await api.login(email)

    assert only_error_code(body) == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "Wrong email or password."
    assert await Session.all().count() == 0
    assert [event.action for event in await AuditEvent.all()] == [AuditAction.LOGIN_FAILED]


async def test_deactivated_user_cannot_sign_in(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    await make_user(EMAIL)
    await User.filter(email=EMAIL).update(is_active=False)
    api = make_client()

    body = await api.login(EMAIL)

    assert only_error_code(body) == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "Wrong email or password."
    assert await Session.all().count() == 0


async def test_members_can_sign_in(member: Api) -> None:
    assert (await member(ME))["data"]["me"]["email"] == "member@acme.example"


async def test_deactivating_the_user_ends_the_session(admin: Api) -> None:
    await User.filter(email=EMAIL).update(is_active=False)

    assert await admin(ME) == {"data": {"me": None}}
    assert only_error_code(await admin("{ apiKeys { totalCount } }")) == "UNAUTHENTICATED"
    assert await Session.all().count() == 0


async def test_every_login_issues_a_new_session_id(admin: Api, make_client: MakeClient) -> None:
    planted = session_cookie(admin)

    await admin.login(EMAIL)

    fresh = session_cookie(admin)
    assert fresh != planted
    # The ID known before sign-in is worth nothing afterwards (session fixation).
    replay = make_client()
    replay.client.cookies.set(COOKIE_NAME, planted)
    assert await replay(ME) == {"data": {"me": None}}
    assert await Session.all().count() == 1


async def test_logout_ends_the_session_on_the_server_and_clears_the_cookie(
    admin: Api, make_client: MakeClient
) -> None:
    old = session_cookie(admin)

    response = await admin.post(LOGOUT)

    assert response.json() == {"data": {"logout": True}}
    header = set_cookie_header(response.headers.get_list("set-cookie")).lower()
    assert "max-age=0" in header
    assert await Session.all().count() == 0
    replay = make_client()
    replay.client.cookies.set(COOKIE_NAME, old)
    assert await replay(ME) == {"data": {"me": None}}
    actions = [event.action for event in await AuditEvent.all().order_by("id")]
    assert actions == [AuditAction.LOGIN_SUCCEEDED, AuditAction.LOGOUT]


async def test_logout_without_a_session_answers_false(anonymous: Api) -> None:
    assert await anonymous(LOGOUT) == {"data": {"logout": False}}
    assert await AuditEvent.all().count() == 0


async def test_unknown_cookie_is_cleared_and_ignored(anonymous: Api) -> None:
    anonymous.client.cookies.set(COOKIE_NAME, "made-up")

    response = await anonymous.post(ME)

    assert response.json() == {"data": {"me": None}}
    assert "max-age=0" in set_cookie_header(response.headers.get_list("set-cookie")).lower()


async def test_idle_session_expires(admin: Api, settings: Settings) -> None:
    idle = timedelta(seconds=settings.session_idle_timeout + 1)
    await Session.all().update(last_seen_at=datetime.now(UTC) - idle)

    assert await admin(ME) == {"data": {"me": None}}
    assert await Session.all().count() == 0


async def test_session_expires_after_the_absolute_timeout_even_when_active(
    admin: Api, settings: Settings
) -> None:
    now = datetime.now(UTC)
    await Session.all().update(
        created_at=now - timedelta(seconds=settings.session_absolute_timeout + 1),
        last_seen_at=now,
    )

    assert await admin(ME) == {"data": {"me": None}}
    assert await Session.all().count() == 0


async def test_session_past_its_stored_expiry_is_refused(admin: Api) -> None:
    await Session.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await admin(ME) == {"data": {"me": None}}


async def test_last_seen_is_not_written_on_every_request(admin: Api) -> None:
    recent = datetime.now(UTC) - timedelta(seconds=REFRESH_INTERVAL // 2)
    await Session.all().update(last_seen_at=recent)

    assert (await admin(ME))["data"]["me"] is not None

    assert (await Session.get()).last_seen_at == recent


async def test_last_seen_is_refreshed_after_the_interval(admin: Api) -> None:
    stale = datetime.now(UTC) - timedelta(seconds=REFRESH_INTERVAL * 2)
    await Session.all().update(last_seen_at=stale)

    assert (await admin(ME))["data"]["me"] is not None

    assert (await Session.get()).last_seen_at > stale + timedelta(seconds=REFRESH_INTERVAL)


@pytest.mark.parametrize("session_id", ["", "x" * 129])
async def test_load_session_ignores_values_that_cannot_be_ours(
    admin: Api, settings: Settings, session_id: str
) -> None:
    assert await load_session(session_id, settings) is None


async def test_role_change_takes_effect_on_the_next_request(admin: Api) -> None:
    await User.filter(email=EMAIL).update(role=Role.MEMBER)
    assert only_error_code(await admin("{ apiKeys { totalCount } }")) == "FORBIDDEN"


async def test_each_session_is_found_by_its_own_id_with_its_user_and_organization(
    make_user: UserFactory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions, "_lookups", {})
    ada = await make_user(EMAIL)
    bob = await make_user("bob@globex.example", organization="Globex")
    ids = [await start_session(user, settings) for user in (ada, bob, ada)]

    found = [await load_session(session_id, settings) for session_id in ids]
    missing = await load_session("y" * 43, settings)

    assert [(s.user.email, s.user.organization.name) for s in found if s is not None] == [
        (EMAIL, "Acme"),
        ("bob@globex.example", "Globex"),
        (EMAIL, "Acme"),
    ]
    assert [s.id_hash for s in found if s is not None] == [sha256_hex(i) for i in ids]
    assert missing is None
    assert len(sessions._lookups) == 1  # one statement, built once, sent four times
