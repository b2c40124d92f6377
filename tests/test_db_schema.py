"""Schema snapshots (`releasegate db snapshot`), schema_drift and row-count growth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import ScratchDb
from releasegate import cli
from releasegate.model import Status

BASELINE = "reports/baselines/shop/main.schema.json"


def snapshot(db: ScratchDb, tmp_path: Path) -> dict[str, Any]:
    spec = tmp_path / "releasegate.yaml"
    spec.write_text(
        "version: 1\ndeployment: {name: shop}\ntarget: {base_url: 'http://127.0.0.1:9'}\n"
        f"databases: {{main: {db.database_yaml()}}}\n"
    )
    assert cli.main(["db", "snapshot", "--spec", str(spec)]) == 0
    data: dict[str, Any] = json.loads((tmp_path / BASELINE).read_text())
    return data


def test_snapshot_records_shape_and_row_counts(scratch_db: ScratchDb, tmp_path: Path) -> None:
    scratch_db.create_shop()
    data = snapshot(scratch_db, tmp_path)
    assert set(data["tables"]) == {"parent", "child", "loose"}
    assert data["row_counts"] == {"parent": 5, "child": 10, "loose": 3}
    child = data["tables"]["child"]
    assert child["primary_key"] == ["id"]
    assert child["columns"]["email"]["nullable"] is True
    if scratch_db.kind != "sqlite":  # SQLite reports INTEGER PRIMARY KEY as nullable
        assert child["columns"]["id"]["nullable"] is False
    assert child["indexes"]["child_status"] == {"columns": ["status"], "unique": False}
    assert child["foreign_keys"] == [
        {"columns": ["parent_id"], "parent": "parent", "parent_columns": ["id"]}
    ]


def test_drift_reports_additions_and_fails_on_removals(
    scratch_db: ScratchDb, db_check: Any, tmp_path: Path
) -> None:
    scratch_db.create_shop()
    snapshot(scratch_db, tmp_path)
    check = {"name": "drift", "type": "schema_drift"}
    assert db_check(check).status is Status.PASSED
    scratch_db.run("ALTER TABLE child ADD COLUMN note VARCHAR(10)")
    result = db_check(check)
    assert result.status is Status.PASSED  # an added column is reported, not failed
    assert result.evidence[0].details["changes"] == [
        {"kind": "added", "what": "column child.note", "detail": ""}
    ]
    assert db_check({**check, "fail_on": ["added"]}).status is Status.FAILED
    scratch_db.run(
        "DROP INDEX child_status" + (" ON child" if scratch_db.kind == "mariadb" else "")
    )
    scratch_db.run("DROP TABLE loose")
    result = db_check(check)
    assert result.status is Status.FAILED
    assert "removed table loose" in result.reason
    assert "removed index child.child_status" in result.reason


@pytest.mark.parametrize("scratch_db", ["postgresql", "mariadb"], indirect=True)
def test_drift_sees_type_and_nullability_changes(
    scratch_db: ScratchDb, db_check: Any, tmp_path: Path
) -> None:
    scratch_db.create_shop()
    snapshot(scratch_db, tmp_path)
    if scratch_db.kind == "postgresql":
        scratch_db.run("ALTER TABLE child ALTER COLUMN email TYPE VARCHAR(200)")
        scratch_db.run("ALTER TABLE child ALTER COLUMN status SET NOT NULL")
    else:
        scratch_db.run("ALTER TABLE child MODIFY email VARCHAR(200)")
        scratch_db.run("ALTER TABLE child MODIFY status VARCHAR(20) NOT NULL")
    result = db_check({"name": "drift", "type": "schema_drift"})
    assert result.status is Status.FAILED
    assert "changed column child.email: type VARCHAR(100) -> VARCHAR(200)" in result.reason
    assert "changed column child.status: nullable True -> False" in result.reason


def test_drift_of_listed_tables_only_and_a_missing_one(
    scratch_db: ScratchDb, db_check: Any, tmp_path: Path
) -> None:
    scratch_db.create_shop()
    snapshot(scratch_db, tmp_path)
    scratch_db.run("DROP TABLE loose")
    assert (
        db_check({"name": "d", "type": "schema_drift", "tables": ["child"]}).status is Status.PASSED
    )
    result = db_check({"name": "d", "type": "schema_drift", "tables": ["child", "ghost"]})
    assert result.status is Status.FAILED
    assert "removed table ghost" in result.reason


def test_drift_without_a_baseline(scratch_db: ScratchDb, db_check: Any, tmp_path: Path) -> None:
    scratch_db.create_shop()
    result = db_check({"name": "d", "type": "schema_drift"})
    assert result.status is Status.ERROR
    assert "releasegate db snapshot" in result.reason
    captured = db_check({"name": "d", "type": "schema_drift", "capture_if_missing": True})
    assert captured.status is Status.PASSED
    assert (tmp_path / BASELINE).is_file()
    assert db_check({"name": "d", "type": "schema_drift"}).status is Status.PASSED


def test_row_count_growth(scratch_db: ScratchDb, db_check: Any, tmp_path: Path) -> None:
    scratch_db.create_shop()
    snapshot(scratch_db, tmp_path)
    check = {"name": "g", "type": "row_count", "table": "child", "max_growth": 1.5, "min_growth": 1}
    result = db_check(check)
    assert result.status is Status.PASSED
    assert result.evidence[0].details["baseline_rows"] == 10
    scratch_db.run("DELETE FROM child WHERE id > 8")
    result = db_check(check)
    assert result.status is Status.FAILED
    assert "0.80x of 10 rows (min 1x)" in result.reason
    scratch_db.run(*(f"INSERT INTO child (id, parent_id) VALUES ({i}, 1)" for i in range(20, 40)))
    assert "grew 2.80x from 10 rows" in db_check(check).reason


def test_snapshot_of_demo_url_outside_a_demo_says_how(tmp_path: Path, capsys: Any) -> None:
    spec = tmp_path / "releasegate.yaml"
    spec.write_text(
        "version: 1\ndeployment: {name: shop}\ntarget: {base_url: 'http://127.0.0.1:9'}\n"
        "databases: {main: {url: 'demo://'}}\n"
    )
    assert cli.main(["db", "snapshot", "--spec", str(spec)]) == 2
    assert "RELEASEGATE_DB_URL" in capsys.readouterr().err
    assert cli.main(["db", "snapshot", "--spec", str(spec), "--database", "audit"]) == 2
    assert "no database 'audit'" in capsys.readouterr().err
