"""Canary secrets planted everywhere a secret comes from; no output or artefact shows any of them.

The spec sends secret headers and a secret query parameter to a target that echoes them back
(raw, percent-encoded, base64, in a cookie and a header), a database URL carries a password
with ``@`` and ``/``, and a Python check prints and logs a secret. The gate runs with ``-rA``,
live logs at DEBUG and JUnit XML; every encoding of every canary is searched for in the
terminal output, the record, the reports, the run log and the XML.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, quote_plus

import pytest

from _fuzzbudget import tried as tally

CANARIES = {
    "CANARY_API_KEY": "ck-7f3a91e2-key-canary",
    "SESSION_TOKEN": "tok/9+canary=session",
    "QUERY_SECRET": "qs-canary-58d1",
    "DB_PASSWORD": "p@ss/w0rd!canary",
}


def encodings(value: str) -> set[str]:
    return {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        base64.b64encode(value.encode()).decode().rstrip("="),
        json.dumps(value)[1:-1],
    }


class Echo(BaseHTTPRequestHandler):
    """Answers every request with what it was sent, in several encodings, and a cookie."""

    def do_GET(self) -> None:
        sent = {k: v for k, v in self.headers.items()}
        body = json.dumps(
            {
                "path": self.path,
                "headers": sent,
                "encoded": {k: quote(v, safe="") for k, v in sent.items()},
                "b64": {k: base64.b64encode(v.encode()).decode() for k, v in sent.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", f"sid={sent.get('X-Api-Key', '')}; HttpOnly")
        self.send_header("X-Echo-Key", sent.get("X-Auth-Session", ""))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


SPEC = """\
version: 1
deployment: {{name: shop}}
target:
  base_url: "{url}"
  headers:
    X-Api-Key: "${{CANARY_API_KEY}}"
    X-Auth-Session: "${{SESSION_TOKEN}}"
databases:
  main: {{url: "postgresql+psycopg://gate:{db_password}@127.0.0.1:1/app"}}
checks:
  - name: echo-passes
    type: http
    phases: [t24h]
    request: {{path: "/echo?key=${{QUERY_SECRET}}&page=1"}}
    expect: {{status: 200}}
  - name: echo-fails
    type: http
    phases: [t24h]
    request: {{path: "/echo?auth=${{QUERY_SECRET}}"}}
    expect: {{status: 200, body_regex: "NEVER-THERE"}}
  - name: db-unreachable
    type: row_count
    phases: [t24h]
    table: orders
    min: 1
"""

CHECKS = """
import logging, os, pytest

@pytest.mark.gate_t24h
def test_prints_and_logs_a_secret(rg_target):
    key = os.environ["CANARY_API_KEY"]
    print("the key is", key)
    logging.getLogger("app").debug("calling with key %s and token %s", key,
                                   os.environ["SESSION_TOKEN"])
    assert rg_target.get("/echo").response.status_code == 200
"""


def test_no_canary_shows_anywhere(
    pytester: pytest.Pytester, echo_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    pytester.makefile(
        ".yaml",
        releasegate=SPEC.format(
            url=echo_server, db_password=quote(CANARIES["DB_PASSWORD"], safe="")
        ),
    )
    pytester.makepyfile(test_checks=CHECKS)
    result = pytester.runpytest_subprocess(
        "-m",
        "gate_t24h",
        "-rA",
        "--log-cli-level=DEBUG",
        "--junitxml=junit.xml",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 12  # the database could not be reached: INCONCLUSIVE
    outputs = {"stdout": result.stdout.str(), "stderr": result.stderr.str()}
    for path in [*pytester.path.joinpath("reports").rglob("*"), pytester.path / "junit.xml"]:
        if path.is_file():
            outputs[str(path.relative_to(pytester.path))] = path.read_text(errors="replace")
    assert "reports/out/shop/t24h/decision.json" in outputs
    assert "echo-fails" in outputs["stdout"]  # the failure and its output were shown
    leaks = [
        (name, form, where)
        for name, value in CANARIES.items()
        for form in encodings(value)
        for where, text in outputs.items()
        if form in text
    ]
    count = sum(len(encodings(value)) for value in CANARIES.values()) * len(outputs)
    tally("secret forms checked", count)
    tally("secrets leaked", len(leaks))
    assert leaks == []
