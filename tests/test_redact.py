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
