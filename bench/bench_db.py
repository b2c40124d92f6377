"""DB integrity benchmark: releasegate's bundled checks against one hand-written query.

    .venv/bin/python bench/bench_db.py                   # PostgreSQL on 127.0.0.1, db test
    .venv/bin/python bench/bench_db.py --repeat 5 --url postgresql+psycopg://postgres@host/db

Data (generated once into schema ``rg_bench``, reused while it is there; ``--regenerate``
rebuilds it): 1,000,000 ``parent`` rows and 10,000,000 ``child`` rows with a foreign key,
plus a few injected orphans, NULL emails and duplicate emails.

Each repetition, alternating: (a) the orphans + not_null + unique checks of ``child`` through
releasegate's probes (orphans and not_null in one bundled aggregate query, then their example
queries; unique as one grouping that returns its number and example keys), in a child
process whose peak RSS is the gate's memory, and again with ``examples: 0``; (b) the same
three numbers from one hand-written query. Prints a JSON summary and a Markdown table row.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import sqlalchemy as sa

SCHEMA = "rg_bench"
ORPHANS, NULLS, DUPLICATES = 7, 11, 5

HAND_WRITTEN = f"""
SELECT
  count(*) FILTER (WHERE c.parent_id IS NOT NULL AND p.id IS NULL) AS orphans,
  count(*) FILTER (WHERE c.email IS NULL) AS null_emails,
  count(c.email) - count(DISTINCT c.email) AS duplicate_emails
FROM {SCHEMA}.child c LEFT JOIN {SCHEMA}.parent p ON p.id = c.parent_id
"""


def generate(engine: sa.Engine, parents: int, children: int, regenerate: bool) -> None:
    with engine.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
            {"s": SCHEMA},
        ).scalar()
        if exists == 2 and not regenerate:
            rows = conn.execute(sa.text(f"SELECT count(*) FROM {SCHEMA}.child")).scalar()
            print(f"reusing {SCHEMA} ({rows:,} child rows); --regenerate to rebuild", flush=True)
            return
    started = time.monotonic()
    statements = [
        f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE",
        f"CREATE SCHEMA {SCHEMA}",
        f"CREATE TABLE {SCHEMA}.parent (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",
        f"INSERT INTO {SCHEMA}.parent SELECT g, 'p' || g FROM generate_series(1, {parents}) g",
        f"CREATE TABLE {SCHEMA}.child (id BIGINT NOT NULL, parent_id BIGINT, email TEXT,"
        " amount INTEGER)",
        f"INSERT INTO {SCHEMA}.child SELECT g, (g % {parents}) + 1,"
        f" 'u' || g || '@example.org', g % 1000 FROM generate_series(1, {children}) g",
        f"ALTER TABLE {SCHEMA}.child ADD PRIMARY KEY (id)",
        f"ALTER TABLE {SCHEMA}.child ADD FOREIGN KEY (parent_id) REFERENCES {SCHEMA}.parent (id)",
        # The breakage a gate must find: orphans (FK enforcement off), NULLs, duplicates.
        "SET LOCAL session_replication_role = replica",
        f"UPDATE {SCHEMA}.child SET parent_id = {parents} + 1000 + id"
        f" WHERE id IN (SELECT g * {children // (ORPHANS + 1)}"
        f" FROM generate_series(1, {ORPHANS}) g)",
        f"UPDATE {SCHEMA}.child SET email = NULL"
        f" WHERE id IN (SELECT g * {children // (NULLS + 1)} + 1"
        f" FROM generate_series(1, {NULLS}) g)",
        f"UPDATE {SCHEMA}.child SET email = 'u1@example.org'"
        f" WHERE id IN (SELECT g * {children // (DUPLICATES + 1)} + 2"
        f" FROM generate_series(1, {DUPLICATES}) g)",
    ]
    with engine.begin() as conn:
        for statement in statements:
            print(f"  {statement[:90]}", flush=True)
            conn.execute(sa.text(statement))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM ANALYZE {SCHEMA}.parent")
        conn.exec_driver_sql(f"VACUUM ANALYZE {SCHEMA}.child")
    print(f"generated in {time.monotonic() - started:.0f} s", flush=True)


def gate_child(url: str, examples: int) -> None:
    """(a), in its own process: the three checks through the probes, as a gate run does."""
    from releasegate.db.connect import dispose_engines
    from releasegate.phases import Phase
    from releasegate.probes import ProbeContext, run_check
    from releasegate.spec import Spec

    checks: list[dict[str, Any]] = [
        {"name": "orphans", "type": "orphans", "table": "child"},
        {"name": "not-null", "type": "not_null", "table": "child", "columns": ["email"]},
        {"name": "unique", "type": "unique", "table": "child", "columns": ["email"]},
    ]
    spec = Spec.model_validate(
        {
            "deployment": {"name": "bench"},
            "target": {"base_url": "http://127.0.0.1:9"},
            "databases": {"main": {"url": url, "schema": SCHEMA, "statement_timeout_s": 600}},
            "checks": [{"phases": ["t24h"], "examples": examples, **c} for c in checks],
        }
    )
    context = ProbeContext(spec=spec, target=None, phase=Phase.T24H)  # type: ignore[arg-type]
    started = time.monotonic()
    results = [run_check(check, context) for check in spec.checks]
    elapsed = time.monotonic() - started
    dispose_engines(context.db)
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "values": [sum(e.value for e in r.evidence) for r in results],
                "statuses": [r.status.value for r in results],
                "sql": results[0].evidence[0].details.get("sql"),
            }
        )
    )


def run_gate(url: str, examples: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--url", url, "--child", "--examples", str(examples)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_hand_written(engine: sa.Engine) -> tuple[float, list[int]]:
    with engine.connect() as conn:
        started = time.monotonic()
        row = conn.exec_driver_sql(HAND_WRITTEN).one()
        return time.monotonic() - started, [int(v) for v in row]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--parents", type=int, default=1_000_000)
    parser.add_argument("--children", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--examples", type=int, default=20, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        gate_child(args.url, args.examples)
        return 0
    engine = sa.create_engine(args.url)
    generate(engine, args.parents, args.children, args.regenerate)
    run_hand_written(engine)  # warm the cache once, for both sides alike
    # (a) the default (20 example keys per check), (a0) counts only, (b) the hand-written query
    gates: list[dict[str, Any]] = []
    counts_only: list[dict[str, Any]] = []
    hands: list[float] = []
    for index in range(args.repeat):
        gates.append(run_gate(args.url, 20))
        counts_only.append(run_gate(args.url, 0))
        seconds, values = run_hand_written(engine)
        hands.append(seconds)
        print(
            f"run {index + 1}: releasegate {gates[-1]['seconds']:.2f} s {gates[-1]['values']}"
            f" {gates[-1]['statuses']} (counts only {counts_only[-1]['seconds']:.2f} s),"
            f" peak RSS {gates[-1]['max_rss_mb']:.0f} MB; hand-written {seconds:.2f} s {values}",
            flush=True,
        )
    gate_s = statistics.median(g["seconds"] for g in gates)
    counts_s = statistics.median(g["seconds"] for g in counts_only)
    hand_s = statistics.median(hands)
    rss = max(g["max_rss_mb"] for g in gates + counts_only)
    summary = {
        "parents": args.parents,
        "children": args.children,
        "repeat": args.repeat,
        "releasegate_median_s": round(gate_s, 3),
        "releasegate_counts_only_median_s": round(counts_s, 3),
        "hand_written_median_s": round(hand_s, 3),
        "ratio": round(gate_s / hand_s, 3),
        "ratio_counts_only": round(counts_s / hand_s, 3),
        "gate_peak_rss_mb": round(rss, 1),
        "releasegate_sql": gates[0]["sql"],
    }
    print(json.dumps(summary, indent=2))
    print(
        f"| {gate_s:.2f} s ({gate_s / hand_s:.2f}x) | {counts_s:.2f} s ({counts_s / hand_s:.2f}x)"
        f" | {hand_s:.2f} s | {rss:.0f} MB |"
    )
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
