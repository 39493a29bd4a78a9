"""HeadGuard alone: how many bytes of a read may reach the parser, head by head."""

from __future__ import annotations

import pytest

from wfa_keys.request_heads import HeadGuard, HeadLimits, refusal_431
from wfa_keys.settings import Settings, SettingsError

LIMITS = HeadLimits(request_line=40, header=30, head=100)


def guard() -> HeadGuard:
    return HeadGuard(LIMITS)


def test_a_head_within_the_limits_is_accepted_whole() -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n"
    assert guard().accept(head) == len(head)


def test_a_request_line_stops_at_its_limit() -> None:
    line = b"GET /" + b"a" * 60 + b" HTTP/1.1\r\n"
    assert guard().accept(line) == LIMITS.request_line


def test_a_request_line_of_exactly_the_limit_with_its_crlf_is_accepted() -> None:
    line = b"GET /" + b"a" * (LIMITS.request_line - 16) + b" HTTP/1.1\r\n"
    assert len(line) == LIMITS.request_line
    assert guard().accept(line + b"Host: x\r\n\r\n") == len(line) + 11


def test_a_header_line_stops_at_its_limit() -> None:
    head = b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 50 + b"\r\n\r\n"
    assert guard().accept(head) == len(b"GET / HTTP/1.1\r\n") + LIMITS.header


def test_the_whole_head_stops_at_its_limit_with_every_line_short() -> None:
    head = b"GET / HTTP/1.1\r\n" + b"X-Small: 0123456789\r\n" * 10 + b"\r\n"
    assert guard().accept(head) == LIMITS.head


def test_a_head_arriving_byte_by_byte_is_counted_across_reads() -> None:
    counting = guard()
    head = b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 50
    accepted = [counting.accept(head[i : i + 1]) for i in range(len(head))]
    first_refused = accepted.index(0)
    assert first_refused == len(b"GET / HTTP/1.1\r\n") + LIMITS.header


def test_a_blank_line_before_the_request_line_leaves_it_the_request_line() -> None:
    # The request-line limit (40) is larger than the header limit (30).
    line = b"\r\nGET /" + b"a" * 20 + b" HTTP/1.1\r\n"
    assert guard().accept(line) == len(line)


def test_the_next_head_starts_from_nothing() -> None:
    counting = guard()
    head = b"GET / HTTP/1.1\r\n" + b"X-Small: 0123456789\r\n" * 3 + b"\r\n"
    assert counting.accept(head) == len(head)
    counting.head_ended()
    assert not counting.reading
    counting.next_head()
    assert counting.reading
    assert counting.accept(head) == len(head)
    assert counting.accept(head) < len(head)  # without next_head: one head of both


def test_the_431_answer_is_json_and_closes_the_connection() -> None:
    answer = refusal_431(HeadLimits())
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"connection: close" in head
    assert b"content-length: %d" % len(body) in head
    assert body.startswith(b'{"error":"request_header_fields_too_large"')


def test_the_limits_default_to_16_kib_a_line_and_64_kib_a_head() -> None:
    assert HeadLimits.from_settings(Settings()) == HeadLimits(16384, 16384, 65536)
    assert HeadLimits() == HeadLimits(16384, 16384, 65536)


def test_the_limits_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "WFA_MAX_REQUEST_LINE_BYTES": "2048",
            "WFA_MAX_HEADER_BYTES": "4096",
            "WFA_MAX_REQUEST_HEAD_BYTES": "8192",
        }
    )
    assert HeadLimits.from_settings(settings) == HeadLimits(2048, 4096, 8192)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"WFA_MAX_HEADER_BYTES": "100"}, "WFA_MAX_HEADER_BYTES"),
        ({"WFA_MAX_REQUEST_HEAD_BYTES": "99999999"}, "WFA_MAX_REQUEST_HEAD_BYTES"),
        (
            {"WFA_MAX_REQUEST_LINE_BYTES": "20000", "WFA_MAX_REQUEST_HEAD_BYTES": "10000"},
            "WFA_MAX_REQUEST_LINE_BYTES",
        ),
    ],
)
def test_limits_a_head_could_not_live_with_are_refused(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(environ)


def test_a_head_begun_uncounted_gets_the_larger_line_limit_for_its_current_line() -> None:
    counting = guard()
    counting.next_head()
    counting.resync()  # somewhere in a header line, or in the request line: unknown
    assert counting.accept(b"v" * 35 + b"\r\n") == 37  # > header limit, <= request line's
    assert counting.accept(b"X-Next: " + b"n" * 30) == LIMITS.header  # then: the usual


def test_reads_of_small_pieces_keep_the_request_line_apart_from_a_blank_line_before_it() -> None:
    counting = guard()
    assert counting.accept(b"\r\nGET /" + b"a" * 20) == 27
    # Still the request line (limit 40, of which 25 bytes are used), not a header (30).
    assert counting.accept(b"a" * 10 + b" HTTP/1.1\r\n") == 40 - 25
    counting = guard()
    assert counting.accept(b"GET / HTTP/1.1\r\nX-A: " + b"a" * 8) == 29
    # A header now (limit 30, of which 13 bytes are used).
    assert counting.accept(b"a" * 20 + b"\r\n") == 30 - 13
