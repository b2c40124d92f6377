"""The demo target's SQLite database: the schema from the runbooks, seed rows and queries.

Timestamps are UTC text in SQLite's own ``datetime('now')`` format, so that runbook queries
such as ``WHERE ts > datetime('now', '-6 hours')`` work on the demo database unchanged.
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..errors import ReleasegateError

SCHEMA = """
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    stock INTEGER NOT NULL CHECK (stock >= 0)
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE episodes (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE TABLE risk_log (
    id INTEGER PRIMARY KEY,
    episode_id INTEGER NOT NULL REFERENCES episodes(id),
    ts TEXT NOT NULL,
    draft_total_score REAL NOT NULL,
    action TEXT NOT NULL
);
CREATE TABLE beliefs (
    id INTEGER PRIMARY KEY,
    episode_id INTEGER NOT NULL REFERENCES episodes(id),
    statement TEXT NOT NULL,
    confidence REAL NOT NULL CHECK (confidence BETWEEN 0 AND 1)
);
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY,
    episode_id INTEGER NOT NULL REFERENCES episodes(id),
    title TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'done')),
    created_at TEXT NOT NULL
);
CREATE INDEX risk_log_ts ON risk_log(ts);
CREATE INDEX risk_log_episode ON risk_log(episode_id);
"""

PRODUCTS = [
    ("KB-MECH-01", "Mechanical keyboard", 8900, 42),
    ("MS-WL-02", "Wireless mouse", 2900, 130),
    ("MN-27-4K", "27-inch 4K monitor", 32900, 12),
    ("HD-USBC-7", "USB-C hub, 7 ports", 4500, 75),
    ("CB-USBC-2M", "USB-C cable, 2 m", 1200, 400),
    ("HS-ANC-3", "Noise-cancelling headset", 15900, 23),
    ("WC-1080", "1080p webcam", 5900, 58),
    ("DK-STAND", "Standing desk frame", 27900, 7),
    ("LP-STAND", "Aluminium laptop stand", 3900, 91),
    ("SSD-1TB", "1 TB NVMe SSD", 7900, 64),
    ("PS-65W", "65 W USB-C charger", 3400, 120),
    ("MP-XL", "XL desk mat", 1900, 210),
]

_TOPICS = ["checkout", "search", "payment retries", "inventory sync", "login", "price update"]
_EVENTS = ["latency spike", "error burst", "config drift", "slow query", "cache miss storm"]
_STATUSES = ["open", "in_progress", "done"]
_RISKY_SCORES = [0.15, 0.2, 0.35, 0.4, 0.55, 0.7]
SEED = 20240611
EPISODES = 200
EPISODE_SPACING = timedelta(seconds=100)  # 200 episodes span 5.6 h, inside the 6 h window


def _open(path: Path) -> sqlite3.Connection:
    # mode=rw: a missing database is an error to report, not an empty file to create.
    uri = f"{Path(path).resolve().as_uri()}?mode=rw"
    return sqlite3.connect(uri, uri=True, timeout=5.0)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _action(score: float) -> str:
    if score == 0.0:
        return "allow"
    return "review" if score < 0.5 else "block"


def _seed(conn: sqlite3.Connection) -> None:
    rng = random.Random(SEED)
    now = _now()
    conn.executemany(
        "INSERT INTO products (sku, name, price_cents, stock) VALUES (?, ?, ?, ?)", PRODUCTS
    )
    for episode_id in range(1, EPISODES + 1):
        created = now - (EPISODES + 1 - episode_id) * EPISODE_SPACING
        summary = f"{rng.choice(_EVENTS).capitalize()} in {rng.choice(_TOPICS)}"
        conn.execute(
            "INSERT INTO episodes (id, created_at, summary) VALUES (?, ?, ?)",
            (episode_id, _stamp(created), summary),
        )
        # Most drafts are harmless; the gate's mean score should sit well below alarm levels.
        score = 0.0 if rng.random() < 0.85 else rng.choice(_RISKY_SCORES)
        conn.execute(
            "INSERT INTO risk_log (episode_id, ts, draft_total_score, action) VALUES (?, ?, ?, ?)",
            (
                episode_id,
                _stamp(created + timedelta(seconds=rng.randint(5, 60))),
                score,
                _action(score),
            ),
        )
        if episode_id % 4 == 0:
            conn.execute(
                "INSERT INTO beliefs (episode_id, statement, confidence) VALUES (?, ?, ?)",
                (
                    episode_id,
                    f"{summary} is caused by the last deploy",
                    round(rng.uniform(0.5, 0.99), 2),
                ),
            )
        if episode_id % 5 == 0:
            conn.execute(
                "INSERT INTO tasks (episode_id, title, status, created_at) VALUES (?, ?, ?, ?)",
                (
                    episode_id,
                    f"Follow up: {summary.lower()}",
                    rng.choice(_STATUSES),
                    _stamp(created + timedelta(minutes=2)),
                ),
            )
    conn.executemany(
        "INSERT INTO orders (product_id, quantity, created_at) VALUES (?, ?, ?)",
        [
            (
                rng.randint(1, len(PRODUCTS)),
                rng.randint(1, 5),
                _stamp(now - timedelta(minutes=rng.randint(1, 360))),
            )
            for _ in range(40)
        ],
    )


def create_database(path: Path) -> None:
    """Create the demo database at ``path`` with the runbook schema and seed rows."""
    path = Path(path)
    if path.exists():
        raise ReleasegateError(
            f"{path} already exists; delete it or choose another path for the demo database"
        )
    # Seed a side file and rename it, so a crash never leaves a half-seeded database behind.
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    with closing(sqlite3.connect(partial)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")  # readers keep reading while orders are written
        conn.executescript(SCHEMA)
        with conn:
            _seed(conn)
    os.replace(partial, path)


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """One connection for one unit of work: committed on success, always closed."""
    with closing(_open(path)) as conn:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        with conn:
            yield conn


def inject_orphans(path: Path, count: int = 5) -> None:
    """Insert ``count`` risk_log rows whose episode does not exist (the ``orphans`` fault)."""
    with closing(_open(path)) as conn, conn:
        # Breaking referential integrity is the point here.
        conn.execute("PRAGMA foreign_keys = OFF")
        (top,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM episodes").fetchone()
        ts = _stamp(_now())
        conn.executemany(
            "INSERT INTO risk_log (episode_id, ts, draft_total_score, action)"
            " VALUES (?, ?, 0.0, 'allow')",
            [(top + 1000 + n, ts) for n in range(count)],
        )


def remove_orphans(path: Path) -> int:
    """Delete risk_log rows whose episode does not exist; return how many there were."""
    with closing(_open(path)) as conn, conn:
        cursor = conn.execute(
            "DELETE FROM risk_log WHERE episode_id NOT IN (SELECT id FROM episodes)"
        )
        return cursor.rowcount


def check(path: Path) -> None:
    """Raise ``sqlite3.Error`` unless the database answers a query on its schema."""
    with connect(path) as conn:
        conn.execute("SELECT 1 FROM products LIMIT 1").fetchall()


def products(path: Path) -> list[dict[str, Any]]:
    with connect(path) as conn:
        rows = conn.execute("SELECT id, sku, name, price_cents, stock FROM products ORDER BY id")
        return [dict(row) for row in rows]


def product(path: Path, product_id: int) -> dict[str, Any] | None:
    with connect(path) as conn:
        row = conn.execute(
            "SELECT id, sku, name, price_cents, stock FROM products WHERE id = ?", (product_id,)
        ).fetchone()
        return dict(row) if row is not None else None


def create_order(path: Path, product_id: int, quantity: int) -> int | None:
    """Insert an order and return its id, or None when the product does not exist."""
    with connect(path) as conn:
        if conn.execute("SELECT 1 FROM products WHERE id = ?", (product_id,)).fetchone() is None:
            return None
        cursor = conn.execute(
            "INSERT INTO orders (product_id, quantity) VALUES (?, ?)", (product_id, quantity)
        )
        assert cursor.lastrowid is not None  # an INSERT into a rowid table always sets it
        return cursor.lastrowid


def recent_episodes(path: Path, limit: int) -> list[dict[str, Any]]:
    """The newest episodes with the score and action of their latest risk_log row."""
    with connect(path) as conn:
        rows = conn.execute(
            """
            SELECT e.id, e.created_at, e.summary, r.draft_total_score AS risk_score, r.action
            FROM episodes AS e
            LEFT JOIN risk_log AS r ON r.id = (
                SELECT id FROM risk_log WHERE episode_id = e.id ORDER BY ts DESC, id DESC LIMIT 1
            )
            ORDER BY e.created_at DESC, e.id DESC
            LIMIT ?
            """,
            (limit,),
        )
        return [dict(row) for row in rows]


def mean_risk_score(path: Path, hours: int = 6) -> float:
    """Mean ``draft_total_score`` over the last ``hours``; NaN when there are no rows.

    NaN rather than 0.0: no data is not a clean bill of health, and a threshold compared with
    NaN fails, which is the safe way for a gate to go.
    """
    with connect(path) as conn:
        (mean,) = conn.execute(
            "SELECT AVG(draft_total_score) FROM risk_log WHERE ts >= datetime('now', ?)",
            (f"-{hours} hours",),
        ).fetchone()
    return float("nan") if mean is None else float(mean)
