"""Secrets never leak: URL passwords, tokens, auth headers, secret-named keys."""

from __future__ import annotations

import pytest

from releasegate.redact import MASK, redact_text, redact_value


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgresql://app:hunter2@127.0.0.1:5432/test", "hunter2"),
        ("mysql+pymysql://root:p%40ss@db/test", "p%40ss"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def", "eyJhbGciOiJIUzI1NiJ9"),
        ("GET /x?access_token=abcdef123456&page=2", "abcdef123456"),
        ('{"password": "s3cret!"}', "s3cret!"),
        ("api_key=KEY-1234567", "KEY-1234567"),
        ("GET /search?q=x&key=AIzaSyCanary123&page=2", "AIzaSyCanary123"),
        ("GET /cb?auth=abc123xyz", "abc123xyz"),
        ("GET /x?session=s355i0n-id", "s355i0n-id"),
        ("https://cdn/x.png?sig=deadbeef42&exp=1", "deadbeef42"),
    ],
)
def test_secrets_in_text_are_masked(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted
    assert MASK in redacted


def test_plain_text_is_untouched() -> None:
    text = "GET /api/products/1: status 200, latency 12 ms"
    assert redact_text(text) == text


def test_secret_named_keys_are_masked_whole() -> None:
    value = {
        "headers": {"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Accept": "*/*"},
        "Cookie": "session=abc",
        "db_password": "x1",
        "nested": [{"token": "t"}, "ok"],
        "empty_token": "",
        "counts": {"passed": 3, "failed": 1},
        "pass": "x",
    }
    assert redact_value(value) == {
        "headers": {"Authorization": MASK, "Accept": "*/*"},
        "Cookie": MASK,
        "db_password": MASK,
        "nested": [{"token": MASK}, "ok"],
        "empty_token": "",
        "counts": {"passed": 3, "failed": 1},
        "pass": MASK,
    }


def test_a_registered_secret_is_masked_even_after_the_text_was_seen() -> None:
    from releasegate.redact import register_secret

    assert redact_text("x-7Hq29vLk-x") == "x-7Hq29vLk-x"
    register_secret("7Hq29vLk")
    assert redact_text("x-7Hq29vLk-x") == "x-***-x"


@pytest.mark.parametrize("header", ["X-Auth-Token", "X-Auth", "x-auth-session", "Session", "Sig"])
def test_secret_headers_beyond_the_usual_few_are_masked(header: str) -> None:
    assert redact_value({header: "v4lue-0f-it"}) == {header: MASK}


def test_a_registered_secret_is_masked_in_every_encoding() -> None:
    import base64
    import json
    from urllib.parse import quote

    from releasegate.redact import register_secret

    secret = "p@ss/w0rd+registered"
    register_secret(secret)
    for form in (
        secret,
        quote(secret, safe=""),
        base64.b64encode(secret.encode()).decode(),
        json.dumps(secret)[1:-1],
    ):
        assert form.rstrip("=") not in redact_text(f"echoed back: {form} (end)")
