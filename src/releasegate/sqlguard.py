"""The query guard: one SELECT, parsed by a real SQL parser (sqlglot), or a ``ProbeError``.

The guard is the second line: every session is read-only at the server already (see
``connect.py``). It refuses, each with what was refused and why:

* text the parser cannot see as the server does: executable comments (``/*! ... */``,
  ``/*M! ... */``) and optimizer hints (``/*+ ... */``), which the parser drops as comments but
  MySQL/MariaDB run (refused on every database); a backslash on MySQL/MariaDB (whether it escapes a
  quote depends on the server's ``sql_mode``, so the end of a string would be a guess);
* more than one statement, or a statement that does not parse in the database's dialect;
* anything but ``SELECT`` / ``WITH ... SELECT`` / ``UNION``-style set operations at the top;
* anywhere in the tree: data-changing statements (a ``DELETE`` in a CTE), ``SELECT ... INTO``
  (a table, ``OUTFILE``, ``DUMPFILE``, ``@var``), ``FOR UPDATE`` / ``FOR SHARE`` /
  ``LOCK IN SHARE MODE``, ``COPY`` and other commands;
* calls of functions on the deny-list (file access, other sessions and servers, settings,
  locks, time bombs), matched on the parsed call, not on the text.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from .errors import ProbeError

# sqlglot warns (with the query) when it falls back to an opaque Command: such a statement is
# refused here anyway, and the query text has no business in the user's log.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}

# Functions a check never needs, by why: reasons appear in the refusal.
_DENIED: dict[str, str] = {}
for _reason, _names in {
    "reads or writes server files": (
        "load_file pg_read_file pg_read_binary_file pg_ls_dir pg_stat_file pg_ls_logdir"
        " pg_ls_waldir pg_ls_tmpdir pg_ls_archive_statusdir pg_ls_logicalmapdir"
        " pg_ls_logicalsnapdir pg_ls_replslotdir pg_file_write pg_file_rename pg_file_unlink"
        " pg_file_sync pg_logdir_ls lo_import lo_export readfile writefile edit fsdir"
        " load_extension sys_exec sys_eval"
    ),
    "touches large objects": (
        "lo_create lo_creat lo_unlink lo_put lo_get lo_from_bytea lo_open lo_close loread"
        " lowrite lo_truncate lo_truncate64 lo_lseek lo_lseek64 lo_tell lo_tell64"
    ),
    "reaches another database or runs SQL from a string": (
        "dblink dblink_exec dblink_connect dblink_connect_u dblink_open dblink_fetch"
        " dblink_send_query dblink_get_result query_to_xml query_to_xmlschema"
        " query_to_xml_and_xmlschema cursor_to_xml cursor_to_xmlschema"
    ),
    "sleeps or burns time (a time bomb)": (
        "sleep pg_sleep pg_sleep_for pg_sleep_until benchmark get_lock master_pos_wait"
        " source_pos_wait master_gtid_wait wait_for_executed_gtid_set"
        " wait_until_sql_thread_after_gtids"
    ),
    "takes locks or changes server or session state": (
        "set_config pg_advisory_lock pg_advisory_lock_shared pg_advisory_xact_lock"
        " pg_advisory_xact_lock_shared pg_try_advisory_lock pg_try_advisory_lock_shared"
        " pg_try_advisory_xact_lock pg_try_advisory_xact_lock_shared pg_advisory_unlock"
        " pg_advisory_unlock_all pg_advisory_unlock_shared release_lock release_all_locks"
        " pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile pg_promote"
        " pg_switch_wal pg_create_restore_point pg_notify nextval setval txid_current"
        " pg_current_xact_id pg_export_snapshot pg_stat_reset pg_stat_reset_shared"
        " pg_stat_reset_single_table_counters pg_stat_reset_single_function_counters"
        " pg_import_system_collations pg_log_backend_memory_contexts"
    ),
}.items():
    for _name in _names.split():
        _DENIED[_name] = _reason
_DENIED_PREFIXES = {
    "pg_read_": "reads or writes server files",
    "pg_ls_": "reads or writes server files",
    "pg_file_": "reads or writes server files",
    "lo_": "touches large objects",
    "dblink": "reaches another database or runs SQL from a string",
    "pg_sleep": "sleeps or burns time (a time bomb)",
    "pg_advisory": "takes locks or changes server or session state",
    "pg_try_advisory": "takes locks or changes server or session state",
    "pg_create_": "takes locks or changes server or session state",
    "pg_drop_": "takes locks or changes server or session state",
    "pg_replication_": "takes locks or changes server or session state",
    "pg_logical_": "takes locks or changes server or session state",
    "pg_stat_reset": "takes locks or changes server or session state",
}


def denied_function(name: str) -> str | None:
    """Why a function of this name is refused, or None."""
    name = name.lower()
    if name in _DENIED:
        return _DENIED[name]
    return next((why for p, why in _DENIED_PREFIXES.items() if name.startswith(p)), None)


def _node_types(*names: str) -> tuple[type[exp.Expression], ...]:
    return tuple(t for n in names if isinstance(t := getattr(exp, n, None), type))


_TOP = _node_types("Select", "Union", "Intersect", "Except", "SetOperation")
_WRITES = _node_types(
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterTable",
    "TruncateTable", "Copy", "LoadData", "Command", "Set", "Use", "Transaction", "Commit",
    "Rollback", "Pragma", "Grant", "Revoke", "Analyze", "Attach", "Detach", "Describe",
)  # fmt: skip

_MYSQL_HIDDEN = re.compile(r"/\*\s*(?:M!|!|\+)")
_INTO_FILE = re.compile(r"(?i)\binto\s+(outfile|dumpfile)\b")


def _refuse(why: str) -> ProbeError:
    return ProbeError(f"the check's query was refused: {why}. A check query must be one SELECT")


def _strip(sql: str, backslash_escapes: bool) -> str:
    """``sql`` with comments blanked and string literals emptied (for messages only)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            j = i + 1
            while j < n:
                if backslash_escapes and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            out.append(f"{ch}{ch}")
            i = j + 1
        elif sql.startswith("--", i) or (backslash_escapes and ch == "#"):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name)
    return str(node.sql_name())


def _what(node: Any) -> str:
    if isinstance(node, exp.Into):
        return "SELECT ... INTO (it writes a table, a file or a variable)"
    if isinstance(node, exp.Lock):
        return "SELECT ... FOR UPDATE/SHARE (it locks rows)"
    if isinstance(node, exp.Command):
        word = str(node.this or "").split()[:1]
        return f"the statement {(word[0] if word else '').upper()!r} (not a SELECT)"
    return f"{node.key.upper()} (it writes or is not a query)"


def guard_read_query(sql: str, backend: str) -> str:
    """Refuse anything but one SELECT; return ``sql`` without a trailing ``;``."""
    hidden = _MYSQL_HIDDEN.search(sql)  # refused everywhere: a spec may move to MariaDB
    if hidden:
        raise _refuse(
            f"it holds an executable comment or optimizer hint ({hidden.group(0)!r}...):"
            " MySQL/MariaDB run what the parser sees as a comment"
        )
    if backend in ("mysql", "mariadb"):
        if "\\" in sql:
            raise _refuse(
                "it holds a backslash: on MySQL/MariaDB whether it escapes a quote depends on"
                " the server's sql_mode, so where a string ends cannot be known. Fix: write"
                " the character as CHAR(92)"
            )
        if _INTO_FILE.search(_strip(sql, backslash_escapes=True)):
            raise _refuse("SELECT ... INTO OUTFILE/DUMPFILE writes a file on the server")
    dialect = DIALECTS.get(backend, backend)
    try:
        parsed = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except (ParseError, TokenError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _refuse(f"it does not parse as {dialect} SQL ({first})") from None
    if not parsed:
        raise _refuse("it holds no statement")
    if len(parsed) > 1:
        raise _refuse(f"it holds {len(parsed)} statements; write one SELECT")
    top = parsed[0]
    while isinstance(top, exp.Subquery):  # (SELECT ...)
        top = top.this
    if not isinstance(top, _TOP):
        raise _refuse(f"it is {_what(top)}, not a SELECT")
    for node in top.walk():
        if isinstance(node, (*_WRITES, exp.Into, exp.Lock)):
            raise _refuse(f"it holds {_what(node)}")
        if isinstance(node, exp.Func):
            name = _function_name(node)
            why = denied_function(name)
            if why:
                raise _refuse(f"it calls {name}(), which {why}")
    return sql.strip().rstrip(";").rstrip()
