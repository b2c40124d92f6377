"""Database access for the DB checks, pushed down into the database.

    state.py     ``DbState``: the demo's SQLite file and the run's engines (no SQLAlchemy import)
    connect.py   URL resolution (``demo://``), the engine cache in a ``DbState``, read-only
                 sessions with a per-statement timeout, errors as ``ProbeError`` (redacted)
    build.py     identifiers, the aggregate query of several checks on one table (a bundle),
                 example queries
    measure.py   one bundled query for the checks on one table, with their example keys
    schema.py    schema snapshots (tables, columns, indexes, keys, row counts) and their diff

Nothing here loads a table into Python: every number is an aggregate computed by the database
and at most ``examples`` rows come back per check.
"""

from __future__ import annotations
