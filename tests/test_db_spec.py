"""The database part of the gate spec: databases, DB check fields and their error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from releasegate.errors import SpecError
from releasegate.loader import load_spec

HEAD = """\
version: 1
deployment: {name: shop}
target: {base_url: "http://127.0.0.1:9"}
"""


def load(tmp_path: Path, body: str, env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "releasegate.yaml"
    path.write_text(HEAD + body)
    return load_spec(path, env or {}).spec


def test_db_checks_default_to_main_kind_db_and_category_data(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        """
databases:
  main: {url: "postgresql+psycopg://gate:${DB_PASSWORD}@127.0.0.1/app", schema: app}
checks:
  - {name: o, type: orphans, phases: [t24h], table: risk_log}
  - {name: u, type: unique, phases: [t24h], table: t, columns: [a, b]}
""",
        {"DB_PASSWORD": "pw-from-env"},
    )
    orphans, unique = spec.checks
    assert (orphans.database, orphans.kind, orphans.category) == ("main", "db", "data")
    assert unique.columns == ["a", "b"]
    assert spec.databases["main"].schema_name == "app"
    assert spec.databases["main"].statement_timeout_s == 30
    assert "pw-from-env" in spec.databases["main"].url


def test_an_unknown_database_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"uses database 'audit'.*known: main"):
        load(
            tmp_path,
            """
databases: {main: {url: "sqlite:///app.db"}}
checks:
  - {name: s, type: sql, phases: [t24h], query: SELECT 1, max: 1, database: audit}
""",
        )


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ("{name: s, type: sql, phases: [t24h], query: SELECT 1}", "set min:, max: or both"),
        (
            "{name: v, type: value_range, phases: [t24h], table: t, column: c, min: 5, max: 1}",
            r"min \(5.0\) must not be above max",
        ),
        ("{name: r, type: row_count, phases: [t24h], table: t}", "max_growth/min_growth"),
        (
            "{name: o, type: orphans, phases: [t24h], references: [{columns: a, parent: p}]}",
            "names no table",
        ),
        (
            "{name: o, type: orphans, phases: [t24h], table: t,"
            " references: [{columns: [a, b], parent: p}]}",
            "same length",
        ),
        ("{name: n, type: not_null, phases: [t24h], table: 't; drop', columns: [a]}", "pattern"),
        ("{name: n, type: not_null, phases: [t24h], table: t, colums: [a]}", "'columns'"),
    ],
)
def test_invalid_db_checks_say_what_to_fix(tmp_path: Path, check: str, message: str) -> None:
    body = f'databases: {{main: {{url: "sqlite:///app.db"}}}}\nchecks:\n  - {check}\n'
    with pytest.raises(SpecError, match=message):
        load(tmp_path, body)


def test_a_database_url_must_be_a_url(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="SQLAlchemy URL"):
        load(tmp_path, "databases: {main: {url: app.db}}\n")


def test_the_repository_demo_spec_is_valid() -> None:
    spec = load_spec(Path(__file__).parents[1] / "releasegate.yaml", {}).spec
    db_checks = [c for c in spec.checks if c.kind == "db"]
    assert {c.type for c in db_checks} >= {"orphans", "sql"}
    assert spec.databases["main"].url == "demo://"
