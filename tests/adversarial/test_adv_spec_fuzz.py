"""The spec loader cannot be crashed: whatever the bytes, ``load_spec`` returns a spec or raises
one ``SpecError`` (never another exception), each call within 2 s, in bounded memory.

Inputs: mutations of the repository's own ``releasegate.yaml`` (byte flips, truncation,
duplicated lines, anchors and aliases, huge numbers, ``${`` references, random unicode), raw
bytes, and the valid spec with values swapped for values of the wrong type.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from _adversarial import examples, tried
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releasegate.errors import SpecError
from releasegate.loader import load_spec

ROOT = Path(__file__).resolve().parents[2]
SEED = (ROOT / "releasegate.yaml").read_bytes()
SEED_LINES = SEED.splitlines(keepends=True)
SEED_DATA: Any = yaml.safe_load(SEED)
MAX_SECONDS = 2.0

FUZZ = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "releasegate.yaml"


def load_or_refuse(path: Path, data: bytes) -> None:
    """Load ``data`` from ``path``: a spec or a SpecError, quickly; anything else fails the test."""
    path.write_bytes(data)
    tried("specs")
    started = time.monotonic()
    try:
        load_spec(path, env={})
    except SpecError as err:
        assert str(err).strip(), "a SpecError without a message"
    elapsed = time.monotonic() - started
    assert elapsed < MAX_SECONDS, f"load_spec took {elapsed:.2f}s on {data[:200]!r}"


# ------------------------------------------------------------------ mutations of the real spec

HOSTILE_SNIPPETS = [
    b"&a [*a]",
    b"*a",
    b"&x ",
    b"*undefined",
    b"[" * 200,
    b"{" * 80,
    b"9" * 5000,
    b"123456789012345678901234567890",
    b"0x" + b"f" * 64,
    b".inf",
    b"-.nan",
    b"1.0e+999",
    b"2024-13-45",
    b"${MY VAR}",
    b"${",
    b"${UNSET_FUZZ_VAR}",
    b"$${x}",
    b"!!python/object:os.system",
    b"!!binary ZZZ",
    b"<<: *a",
    b"? [a, b]\n: c",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\t",
    b"---\n",
    b"...\n",
    b"%YAML 1.1\n",
    b'"unterminated',
]

BOMB = b"a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n".encode() for i in range(1, 9)
)

Mutation = Callable[[bytes], bytes]


@st.composite
def mutation(draw: st.DrawFn) -> Mutation:
    kind = draw(st.sampled_from(["flip", "truncate", "dup", "drop", "insert", "unicode", "bomb"]))
    where = draw(st.floats(min_value=0, max_value=1))

    def at(data: bytes) -> int:
        return int(where * len(data))

    if kind == "flip":
        byte = draw(st.integers(0, 255))
        return lambda d: d[: at(d)] + bytes([byte]) + d[at(d) + 1 :] if d else d
    if kind == "truncate":
        return lambda d: d[: at(d)]
    if kind in ("dup", "drop"):
        count = draw(st.integers(1, 50))

        def lines(d: bytes) -> bytes:
            rows = d.splitlines(keepends=True)
            if not rows:
                return d
            i = int(where * (len(rows) - 1))
            copies = [rows[i]] * count if kind == "dup" else []
            return b"".join(rows[:i] + copies + rows[i + 1 :])

        return lines
    if kind == "insert":
        snippet = draw(st.sampled_from(HOSTILE_SNIPPETS))
        return lambda d: d[: at(d)] + snippet + d[at(d) :]
    if kind == "unicode":
        text = draw(st.text(min_size=1, max_size=20)).encode("utf-8", "surrogatepass")
        return lambda d: d[: at(d)] + text + d[at(d) :]
    return lambda d: d + b"\n" + BOMB + b"boom: [*a8, *a8]\n"


@FUZZ
@given(st.lists(mutation(), min_size=1, max_size=5))
def test_mutations_of_the_real_spec_never_crash_the_loader(
    spec_file: Path, mutations: list[Mutation]
) -> None:
    data = SEED
    for mutate in mutations:
        data = mutate(data)
    load_or_refuse(spec_file, data)


@FUZZ
@given(st.binary(max_size=4096))
def test_raw_bytes_never_crash_the_loader(spec_file: Path, data: bytes) -> None:
    load_or_refuse(spec_file, data)


@FUZZ
@given(
    st.lists(
        st.text(alphabet=" \n\t-:[]{},&*!|>'\"#%@`?$abcxyz019.", max_size=60), max_size=30
    ).map(lambda parts: "".join(parts).encode())
)
def test_yaml_punctuation_soup_never_crashes_the_loader(spec_file: Path, data: bytes) -> None:
    load_or_refuse(spec_file, data)


# ---------------------------------------------- the valid spec, values swapped for other types

WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**18), max_value=10**18),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["${NOPE}", "${A B}", "([a-", "$..[", "/", "demo://", "t99h", "99999"]),
    st.lists(st.integers(-1000, 100_000), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


SEED_PATHS = paths(SEED_DATA)


def replaced(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {k: replaced(v, rest, value) if k == head else v for k, v in node.items()}
    if isinstance(node, list):
        return [replaced(v, rest, value) if i == head else v for i, v in enumerate(node)]
    return node  # an earlier swap replaced what held this path


@settings(FUZZ, max_examples=examples(60))  # each example validates the whole real spec: slower
@given(st.lists(st.tuples(st.sampled_from(SEED_PATHS), WRONG_VALUES), min_size=1, max_size=4))
def test_values_of_the_wrong_type_are_spec_errors(
    spec_file: Path, swaps: list[tuple[tuple[Any, ...], Any]]
) -> None:
    data = SEED_DATA
    for path, value in swaps:
        data = replaced(data, path, value)
    load_or_refuse(spec_file, yaml.safe_dump(data, allow_unicode=True).encode())


# ---------------------------------------------------------------------------- memory, bounded

HOSTILE_FILES = {
    "bomb": SEED + b"\n" + BOMB + b"boom: [*a8, *a8]\n",
    "wide": b"x: [" + b"a, " * 300_000 + b"]\n",
    "deep": b"x: " + b"[" * 100_000 + b"]" * 100_000,
    "huge int": b"x: " + b"9" * 900_000 + b"\n",
    "long string": b"x: '" + b"a" * 1_000_000 + b"'\n",
}


@pytest.mark.parametrize("name", list(HOSTILE_FILES))
def test_hostile_files_are_refused_in_bounded_memory(spec_file: Path, name: str) -> None:
    data = HOSTILE_FILES[name]
    load_or_refuse(spec_file, data)  # timed without tracemalloc, which slows allocation down
    if name == "wide":
        return  # 100k values under tracemalloc take 10 s; the bomb covers the same limit
    tracemalloc.start()
    try:
        with pytest.raises(SpecError):
            load_spec(spec_file, env={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, f"{name}: {peak / 1e6:.0f} MB"
