"""Reads the kql/ functions and renders them for each engine from the same text.

Each `kql/<Name>.kql` holds one function: a header of `//` comment lines (what it computes, a
`// signature: Name(params)` line, parameters, output columns) followed by the body. DuckDB
(duckdb-kql) takes the bodies as stored functions (`function Name(params) { body }`); Log Analytics
takes them as inline `let Name = (params) { body };` definitions sent ahead of the query, so nothing
has to be deployed in the workspace.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from github_ueba.errors import UebaError

#: The function `features_query` calls; its output is the base-feature table.
FEATURES_FUNCTION = "ActorDayFeatures"

_SIGNATURE = re.compile(r"^//\s*signature:\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\((?P<params>.*)\)\s*$")
_PARAM = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*:\s*[a-z]+\s*$")


class KqlTextError(UebaError):
    """A kql/ file is malformed (names the file and line) or a query cannot be rendered."""


@dataclass(frozen=True)
class KqlFunction:
    """One kql/ function: its name, parameter list text `a:datetime, b:long`, body and header doc."""

    name: str
    params: str
    body: str
    doc: str
    path: Path

    def stored_definition(self) -> str:
        """The definition duckdb-kql takes in `functions=[...]` (Kusto's stored-function syntax)."""
        return f"function {self.name}({self.params}) {{\n{self.body}\n}}"

    def inline_definition(self) -> str:
        """The `let` statement Log Analytics takes ahead of a query."""
        return f"let {self.name} = ({self.params}) {{\n{self.body}\n}};"


def kql_dir() -> Path:
    """The folder holding the .kql files: env GITHUB_UEBA_KQL_DIR, else the repository's kql/."""
    configured = os.environ.get("GITHUB_UEBA_KQL_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "kql"


def parse_function(path: Path) -> KqlFunction:
    """Split one .kql file into header doc, signature and body; raise KqlTextError naming the line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header_end = next((i for i, line in enumerate(lines) if not line.lstrip().startswith("//")), len(lines))
    signatures = [(i, _SIGNATURE.match(lines[i].strip())) for i in range(header_end)]
    found = [(i, m) for i, m in signatures if m]
    if len(found) != 1:
        raise KqlTextError(
            f"{path}:1: the header must hold exactly one '// signature: {path.stem}(name:type, ...)' line "
            f"(found {len(found)})"
        )
    line_no, match = found[0]
    if match["name"] != path.stem:
        raise KqlTextError(f"{path}:{line_no + 1}: signature names {match['name']!r}, the file is {path.stem!r}")
    params = match["params"].strip()
    bad = [p for p in params.split(",") if params and not _PARAM.match(p)]
    if bad:
        raise KqlTextError(f"{path}:{line_no + 1}: parameter {bad[0].strip()!r} is not 'name:type'")
    body = "\n".join(lines[header_end:]).strip()
    if not body:
        raise KqlTextError(f"{path}:{header_end + 1}: the function body is empty")
    doc = "\n".join(re.sub(r"^//\s?", "", line.strip()) for line in lines[:header_end])
    return KqlFunction(name=path.stem, params=params, body=body, doc=doc, path=path)


def load_functions(kql_dir_path: Path | None = None) -> dict[str, KqlFunction]:
    """Every kql/*.kql function by name, in dependency order (a function after those it calls)."""
    folder = Path(kql_dir_path) if kql_dir_path is not None else kql_dir()
    paths = sorted(folder.glob("*.kql"))
    if not paths:
        raise KqlTextError(f"{folder}: no .kql files (set GITHUB_UEBA_KQL_DIR or run from the repository)")
    functions = {f.name: f for f in map(parse_function, paths)}
    return {name: functions[name] for name in _dependency_order(functions)}


def _dependency_order(functions: dict[str, KqlFunction]) -> list[str]:
    calls = {
        name: sorted(other for other in functions if other != name and re.search(rf"\b{other}\s*\(", f.body))
        for name, f in functions.items()
    }
    ordered: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name):], name])
            raise KqlTextError(f"{functions[name].path}: the kql/ functions call each other in a cycle: {cycle}")
        visiting.append(name)
        for callee in calls[name]:
            visit(callee)
        visiting.pop()
        ordered.append(name)

    for name in sorted(functions):
        visit(name)
    return ordered


def stored_functions(kql_dir_path: Path | None = None) -> list[str]:
    """All kql/ functions as duckdb-kql stored-function definitions."""
    return [f.stored_definition() for f in load_functions(kql_dir_path).values()]


def inline_definitions(kql_dir_path: Path | None = None) -> str:
    """All kql/ functions as `let` statements, callees first, for Log Analytics."""
    return "\n".join(f.inline_definition() for f in load_functions(kql_dir_path).values())


def kql_datetime(day: dt.date) -> str:
    """A KQL datetime literal for UTC midnight of `day`."""
    return f"datetime({day.isoformat()})"


def features_call(
    start: dt.date, end: dt.date, history_start: dt.date, *, new_repo_days: int, off_hours_z: float
) -> str:
    """The `ActorDayFeatures(...)` call for output days [start, end) with history from `history_start`."""
    for name, value in (("start", start), ("end", end), ("history_start", history_start)):
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise KqlTextError(f"features query: {name}={value!r} must be a date")
    if not history_start <= start < end:
        raise KqlTextError(
            f"features query: need history_start <= start < end, got {history_start}, {start}, {end}"
        )
    if isinstance(new_repo_days, bool) or not isinstance(new_repo_days, int) or new_repo_days < 1:
        raise KqlTextError(f"features query: new_repo_days={new_repo_days!r} must be an int >= 1")
    if not isinstance(off_hours_z, (int, float)) or not math.isfinite(off_hours_z) or off_hours_z <= 0:
        raise KqlTextError(f"features query: off_hours_z={off_hours_z!r} must be a number > 0")
    return (
        f"{FEATURES_FUNCTION}({kql_datetime(start)}, {kql_datetime(end)}, {kql_datetime(history_start)}, "
        f"{new_repo_days}, real({float(off_hours_z)!r}))"
    )


def features_query(
    start: dt.date,
    end: dt.date,
    history_start: dt.date,
    *,
    new_repo_days: int,
    off_hours_z: float,
    prelude: str,
    inline: bool,
    kql_dir_path: Path | None = None,
) -> str:
    """The whole query text: the prelude, the inline definitions when `inline`, and the call."""
    parts = [prelude.strip()] if prelude.strip() else []
    if inline:
        parts.append(inline_definitions(kql_dir_path))
    parts.append(features_call(start, end, history_start, new_repo_days=new_repo_days, off_hours_z=off_hours_z))
    return "\n".join(parts)

