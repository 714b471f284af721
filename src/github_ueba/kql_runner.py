"""KQL -> DuckDB SQL through duckdb-kql, in a subprocess that has its own antlr4 runtime.

duckdb-kql 1.1.2 needs antlr4 4.13.2 and Hydra needs antlr4 4.9, so duckdb-kql lives in a private
folder (`kql_setup.kql_lib_dir()`) that only this module's subprocess puts on `sys.path`. The
subprocess only translates: it reads a JSON request on stdin and writes the SQL on stdout; the
caller runs the SQL on its own DuckDB connection, so the data never crosses a process boundary and
a translation can be cached. Running `python -m github_ueba.kql_runner` is the server side; the
functions `translate` and `parse_errors` are the client side. The server side imports only the
standard library and duckdb_kql (never Hydra, OmegaConf or pandas).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from github_ueba.errors import UebaError
from github_ueba.kql_setup import kql_lib_dir

#: The source folder holding `github_ueba`, put on the subprocess's PYTHONPATH after kql-lib.
_SRC_DIR = Path(__file__).resolve().parents[1]

_SETUP_HINT = (
    "run `make install` or `github-ueba setup-kql` (or point GITHUB_UEBA_KQL_LIB at a folder holding duckdb-kql)"
)


class KqlRunnerError(UebaError):
    """duckdb-kql refused or failed to translate a query (the message carries its diagnostic)."""


class KqlLibraryMissing(KqlRunnerError):
    """The private duckdb-kql folder is missing or incomplete."""


@dataclass(frozen=True)
class Translation:
    """DuckDB SQL for a KQL query, plus values for its placeholders (usually none)."""

    sql: str
    parameters: dict[str, Any] = field(default_factory=dict)


def check_kql_lib() -> Path:
    """The kql-lib folder, after checking it holds duckdb_kql; raise KqlLibraryMissing otherwise."""
    lib = kql_lib_dir()
    if not (lib / "duckdb_kql" / "__init__.py").is_file():
        raise KqlLibraryMissing(f"duckdb-kql is not installed in {lib}; {_SETUP_HINT}")
    return lib


def _call(request: dict[str, Any]) -> dict[str, Any]:
    """Run one request through the subprocess and return its JSON answer."""
    lib = check_kql_lib()
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(lib), str(_SRC_DIR), *inherited])}
    proc = subprocess.run(
        [sys.executable, "-m", "github_ueba.kql_runner"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        if "No module named" in tail:
            raise KqlLibraryMissing(f"duckdb-kql in {lib} cannot be imported ({tail}); {_SETUP_HINT}")
        raise KqlRunnerError(f"the duckdb-kql subprocess failed (exit {proc.returncode}): {tail}")
    answer: dict[str, Any] = json.loads(proc.stdout)
    if not answer.get("ok"):
        raise KqlRunnerError(f"duckdb-kql: {answer.get('error')}: {answer.get('message')}")
    return answer


_CACHE: dict[str, Translation] = {}


def translate(query: str, functions: list[str], schema: dict[str, list[str]]) -> Translation:
    """DuckDB SQL for a KQL `query` that may call the stored `functions` over tables with `schema`.

    `schema` maps each table the query reads to its column names (duckdb-kql needs them to render
    `join` and `lookup`). Translations are cached in this process by the text of all three.
    """
    key = hashlib.sha256(json.dumps([query, functions, schema], sort_keys=True).encode()).hexdigest()
    if key not in _CACHE:
        answer = _call({"op": "translate", "query": query, "functions": functions, "schema": schema})
        _CACHE[key] = Translation(answer["sql"], _decode(answer.get("parameters", {})))
    return _CACHE[key]


def parse_errors(query: str) -> list[str]:
    """duckdb-kql's syntax diagnostics for `query` (empty when it parses); no functions needed."""
    return list(_call({"op": "parse", "query": query})["diagnostics"])


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe form of bound parameter values (datetimes and timespans tagged)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dt.datetime):
            out[name] = {"datetime": value.isoformat()}
        elif isinstance(value, dt.timedelta):
            out[name] = {"microseconds": value // dt.timedelta(microseconds=1)}
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = {"value": value}
        else:
            raise TypeError(f"query parameter {name!r} has a type the runner cannot pass on: {type(value).__name__}")
    return out


def _decode(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, tagged in values.items():
        if "datetime" in tagged:
            out[name] = dt.datetime.fromisoformat(tagged["datetime"])
        elif "microseconds" in tagged:
            out[name] = dt.timedelta(microseconds=tagged["microseconds"])
        else:
            out[name] = tagged["value"]
    return out


def _serve(request: dict[str, Any]) -> dict[str, Any]:
    """Answer one request with duckdb_kql (imported here, inside the subprocess only)."""
    import duckdb_kql

    if request["op"] == "parse":
        diagnostics = duckdb_kql.validate(request["query"])
        return {"ok": True, "diagnostics": [f"{d.span}: {d.message}" for d in diagnostics]}
    if request["op"] == "translate":
        try:
            sql = duckdb_kql.to_sql(request["query"], schema=request["schema"], functions=request["functions"])
        except (duckdb_kql.KqlError, ValueError, TypeError) as err:
            return {"ok": False, "error": type(err).__name__, "message": str(err)}
        if getattr(sql, "unbound", None):
            return {"ok": False, "error": "unbound parameters", "message": ", ".join(sorted(sql.unbound))}
        return {"ok": True, "sql": str(sql), "parameters": _encode(dict(sql.parameters))}
    return {"ok": False, "error": "bad request", "message": f"unknown op {request['op']!r}"}


def main() -> None:
    """Subprocess entry point: one JSON request on stdin, one JSON answer on stdout."""
    answer = _serve(json.loads(sys.stdin.read()))
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
