"""A fake Log Analytics workspace for tests: the real `LogsQueryClient` talks HTTP to it.

`FakeWorkspace` answers `POST /v1/workspaces/{id}/query` with the JSON shape the service sends. It
runs the KQL it receives with duckdb-kql (`features.base.run_kql`) over fixture tables stored under
the deployment's own table and column names, so the prelude's mapping is executed for real. The inline
`let Name = (params) { body };` definitions are turned back into stored functions (duckdb-kql does not
take tabular inline functions); `column_ifexists` is resolved against the fixture's columns; the
request's timespan filters each table on `TimeGenerated`, as the service does. Failures (429, 401,
504, partial results) are scripted per test.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from github_ueba.errors import UebaError
from github_ueba.events import EVENT_SCHEMA
from github_ueba.features.base import run_kql

_LET_FUNCTION = re.compile(r"^let\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*\(([^)]*)\)\s*\{", re.MULTILINE)
_COLUMN_IFEXISTS = re.compile(r"column_ifexists\(\s*'([A-Za-z_][A-Za-z0-9_]*)'\s*,\s*([^()]*(?:\([^()]*\))?)\s*\)")
_QUERY_PATH = re.compile(r"^/v1/workspaces/([^/]+)/query$")

_KUSTO_TYPES = {
    pa.types.is_boolean: "bool",
    pa.types.is_int32: "int",
    pa.types.is_integer: "long",
    pa.types.is_floating: "real",
    pa.types.is_timestamp: "datetime",
    pa.types.is_string: "string",
    pa.types.is_large_string: "string",
}


# ------------------------------------------------------------------------------ KQL rewriting


def _matching_brace(text: str, open_at: int) -> int:
    """Index of the `}` closing the `{` at `open_at`, skipping string literals and // comments."""
    depth, i = 0, open_at
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            end = text.find(ch, i + 1)
            while end != -1 and text[end - 1] == "\\":
                end = text.find(ch, end + 1)
            i = len(text) if end == -1 else end
        elif text.startswith("//", i):
            newline = text.find("\n", i)
            i = len(text) if newline == -1 else newline
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced braces after offset {open_at}")


def inline_to_stored(query: str) -> tuple[str, list[str]]:
    """Split inline `let F = (params) { body };` definitions out of `query` as stored functions."""
    functions: list[str] = []
    rest, pos = [], 0
    for match in _LET_FUNCTION.finditer(query):
        if match.start() < pos:
            continue
        close = _matching_brace(query, match.end() - 1)
        after = query[close + 1:].lstrip()
        if not after.startswith(";"):
            raise ValueError(f"inline function {match[1]} is not followed by ';'")
        body = query[match.end():close]
        functions.append(f"function {match[1]}({match[2].strip()}) {{{body}}}")
        rest.append(query[pos:match.start()])
        pos = query.index(";", close) + 1
    rest.append(query[pos:])
    return "".join(rest).strip(), functions


def resolve_column_ifexists(query: str, columns: set[str]) -> str:
    """Replace `column_ifexists('c', default)` by `['c']` when a table has column c, else by default."""
    return _COLUMN_IFEXISTS.sub(lambda m: f"['{m[1]}']" if m[1] in columns else m[2].strip(), query)


# ------------------------------------------------------------------------------ fixtures


def fixture_events(start: dt.date, days: int, seed: int = 7) -> pa.Table:
    """A small deterministic enterprise's audit events (EVENT_SCHEMA) over `days` days from `start`."""
    rng = np.random.default_rng(seed)
    actors = np.array([f"dev{i}" for i in range(8)] + ["admin1", "ci-bot[bot]"])
    repos = np.array([f"acme/repo{i}" for i in range(12)])
    actions = np.array(["git.clone", "git.fetch", "git.push", "repo.download_zip", "pull_request.create",
                        "repo.access", "org.update_member", "repo.create", "hook.create", "protected_branch.destroy"])
    weights = np.array([0.22, 0.2, 0.25, 0.05, 0.16, 0.03, 0.03, 0.02, 0.02, 0.02])
    n = 2400
    day = rng.integers(0, days, n)
    actor_idx = rng.integers(0, len(actors), n)
    hour = np.clip(np.round(rng.normal(10 + actor_idx % 4, 2.5, n)), 0, 23).astype(int)
    hour[rng.random(n) < 0.03] = 3  # a few night events (off-hours)
    seconds = day * 86400 + hour * 3600 + rng.integers(0, 3600, n)
    seconds[:6] = (days - 1) * 86400 + 86400 - rng.integers(1, 1200, 6)  # late on the last day
    epoch = int(dt.datetime.combine(start, dt.time(), dt.timezone.utc).timestamp() * 1000)
    action = rng.choice(actions, n, p=weights)
    repo = rng.choice(repos, n).astype(object)
    repo[np.isin(action, ["org.update_member"])] = None
    ip_pool = np.array([f"10.0.{i}.{j}" for i in range(4) for j in range(3)])
    ip = ip_pool[(actor_idx * 3 + rng.integers(0, 2, n)) % len(ip_pool)].astype(object)
    ip[rng.random(n) < 0.1] = None
    country = np.where(rng.random(n) < 0.95, "DE", "US").astype(object)
    country[ip == None] = None  # noqa: E711 (elementwise)
    visibility = np.where(action == "repo.access", np.where(rng.random(n) < 0.5, "public", "private"), None)
    permission = np.where(action == "org.update_member", np.where(rng.random(n) < 0.5, "admin", "read"), None)
    user = np.where(action == "org.update_member", rng.choice(actors, n), None).astype(object)
    removal = n // 2
    action[removal], actor_idx[removal], user[removal], repo[removal] = "org.remove_member", 8, "dev7", None
    columns: dict[str, Any] = {
        "timestamp": epoch + seconds * 1000 + rng.integers(0, 1000, n),
        "document_id": [f"doc-{i}" for i in range(n)],
        "action": action,
        "actor": actors[actor_idx],
        "actor_id": (actor_idx + 1000).astype(str),
        "actor_ip": ip,
        "country_code": country,
        "org": np.full(n, "acme"),
        "repo": repo,
        "user": user,
        "operation_type": np.full(n, "access"),
        "transport_protocol_name": np.where(np.char.startswith(action.astype(str), "git."), "http", None),
        "programmatic_access_type": np.full(n, None),
        "user_agent": np.full(n, "git/2.45"),
        "business": np.full(n, "acme-ent"),
        "visibility": visibility,
        "permission": permission,
        "source_file": np.full(n, "fixture"),
        "source_line": np.arange(1, n + 1),
    }
    arrays = {name: pa.array(list(columns[name]), type=EVENT_SCHEMA.field(name).type) for name in EVENT_SCHEMA.names}
    return pa.table(arrays)


#: Each deployment's table: its name and `SELECT` list over the canonical events (written down here,
#: independently of `la_presets`, from the same Azure-Sentinel sources).
_EVENT_TIME = "make_timestamp(timestamp * 1000)"
_INGESTED = f"{_EVENT_TIME} + INTERVAL 30 MINUTE"  # ingestion lag: TimeGenerated after the event
PRESET_TABLES: dict[str, tuple[str, str]] = {
    "gh_audit_logs_cl": (
        "GH_Audit_Logs_CL",
        f"{_INGESTED} AS TimeGenerated, timestamp, document_id, action, actor, actor_id, actor_ip, country_code, "
        "org, repo, \"user\", operation_type, transport_protocol_name, programmatic_access_type, user_agent, "
        "business, visibility, permission",
    ),
    "github_audit_log_polling": (
        "GitHubAuditLogPolling_CL",
        f"{_INGESTED} AS TimeGenerated, CAST(timestamp AS DOUBLE) AS created_at_d, action AS action_s, "
        "actor AS actor_s, CAST(actor_id AS DOUBLE) AS actor_id_d, actor_ip AS actor_ip_s, "
        "country_code AS actor_location_country_code_s, org AS org_s, repo AS repo_s, \"user\" AS user_s, "
        "operation_type AS operation_type_s, visibility AS visibility_s, permission AS permission_s",
    ),
    "github_audit_logs_v2": (
        "GitHubAuditLogsV2_CL",
        f"{_EVENT_TIME} AS TimeGenerated, CAST(timestamp AS DOUBLE) AS CreatedAt, document_id AS DocumentId, "
        "action AS Action, actor AS Actor, CAST(actor_id AS DOUBLE) AS ActorId, actor_ip AS ActorIp, "
        "country_code AS CountryCode, org AS Org, repo AS Repo, \"user\" AS \"User\", "
        "operation_type AS OperationType, transport_protocol_name AS TransportProtocolName, "
        "programmatic_access_type AS ProgrammaticAccessType, user_agent AS UserAgent, business AS Business, "
        "visibility AS Visibility, permission AS Permission",
    ),
}


def write_preset_table(events_parquet: Path, preset: str, out_dir: Path) -> tuple[str, Path]:
    """Store the events as deployment `preset` would hold them; return (table name, Parquet path)."""
    table, select = PRESET_TABLES[preset]
    path = Path(out_dir) / f"{table}.parquet"
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        con.execute(f"COPY (SELECT {select} FROM read_parquet('{events_parquet}')) TO '{path}' (FORMAT parquet)")
    return table, path


# ------------------------------------------------------------------------------ the server


@dataclass
class Reply:
    """A scripted answer: HTTP status, JSON body and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    """What the client sent."""

    workspace_id: str
    query: str
    timespan: Optional[str]
    headers: dict[str, str]


def error_body(code: str, message: str, inner: Optional[str] = None) -> dict[str, Any]:
    """The service's error JSON."""
    body: dict[str, Any] = {"code": code, "message": message}
    if inner:
        body["innererror"] = {"code": code, "message": inner}
    return {"error": body}


def parse_timespan(value: Optional[str]) -> Optional[tuple[dt.datetime, dt.datetime]]:
    """`start/end` ISO 8601 timespan → (start, end) UTC; None for no limit."""
    if value is None:
        return None
    start, _, end = value.partition("/")
    parse = lambda text: dt.datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return parse(start), parse(end)


def arrow_to_tables_json(table: pa.Table) -> list[dict[str, Any]]:
    """A result table in the service's JSON shape (columns with Kusto types, rows as lists)."""
    decimals = [f.name for f in table.schema if pa.types.is_decimal(f.type)]
    for name in decimals:  # DuckDB sums are DECIMAL; Kusto's are long (scale 0) or real
        scale = table.schema.field(name).type.scale
        table = table.set_column(table.schema.get_field_index(name), name,
                                 table[name].cast(pa.int64() if scale == 0 else pa.float64()))
    columns = []
    for f in table.schema:
        kind = next((name for test, name in _KUSTO_TYPES.items() if test(f.type)), "dynamic")
        columns.append({"name": f.name, "type": kind})
    data = table.to_pydict()
    as_json = {
        f.name: [v.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if isinstance(v, dt.datetime) else v for v in data[f.name]]
        for f in table.schema
    }
    rows = [list(r) for r in zip(*(as_json[c["name"]] for c in columns))] if table.num_rows else []
    return [{"name": "PrimaryResult", "columns": columns, "rows": rows}]


class FakeWorkspace:
    """A fake Log Analytics query endpoint on 127.0.0.1 that runs KQL over fixture Parquet tables.

    `tables` maps table names to Parquet files; `saved_functions` are the workspace's saved functions
    (None: none saved); `partial_above` makes results with more rows come back partial (truncated,
    with an `error`), like the service's size limit. `script` holds replies sent before any query runs.
    """

    def __init__(
        self,
        tables: dict[str, Path],
        workspace_id: str = "00000000-0000-0000-0000-00000000beef",
        token: str = "fake-token",
        saved_functions: Optional[list[str]] = None,
    ) -> None:
        self.tables = {name: Path(path) for name, path in tables.items()}
        self.workspace_id = workspace_id
        self.token = token
        self.saved_functions = saved_functions
        self.partial_above: Optional[int] = None
        self.script: list[Reply] = []
        self.requests: list[RecordedRequest] = []
        self._columns = {c for path in self.tables.values() for c in pq.read_schema(path).names}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FakeWorkspace":
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down and close its socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def reset(self) -> None:
        """Forget recorded requests and scripted behaviour (between tests sharing one server)."""
        with self._lock:
            self.requests.clear()
            self.script.clear()
            self.partial_above = None

    def answer(self, request: RecordedRequest) -> Reply:
        """The reply to one recorded request."""
        with self._lock:
            self.requests.append(request)
            if self.script:
                return self.script.pop(0)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, error_body("InvalidTokenError", "The provided authentication is not valid."),
                         {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if request.workspace_id != self.workspace_id:
            return Reply(404, error_body("WorkspaceNotFoundError", f"workspace {request.workspace_id} not found"))
        try:
            result = self.run(request.query, parse_timespan(request.timespan))
        except (UebaError, duckdb.Error, ValueError) as err:
            return Reply(400, error_body("BadArgumentError", "The request had some invalid properties",
                                         inner=str(err).splitlines()[0]))
        body: dict[str, Any] = {"tables": arrow_to_tables_json(result)}
        if self.partial_above is not None and result.num_rows > self.partial_above:
            body = {"tables": arrow_to_tables_json(result.slice(0, self.partial_above)),
                    "error": error_body("PartialError", "There were some errors when processing your query.",
                                        inner="Query result set has exceeded the internal data size limit")["error"]}
        return Reply(200, body)

    def run(self, query: str, timespan: Optional[tuple[dt.datetime, dt.datetime]]) -> pa.Table:
        """Execute `query` as the workspace would: timespan on TimeGenerated, inline functions, column_ifexists."""
        text, functions = inline_to_stored(resolve_column_ifexists(query, self._columns))
        if not functions:
            functions = list(self.saved_functions or [])
        with tempfile.TemporaryDirectory() as tmp:
            tables = {name: self._restrict(path, timespan, Path(tmp)) for name, path in self.tables.items()}
            return run_kql(text, tables, functions=functions)

    @staticmethod
    def _restrict(path: Path, timespan: Optional[tuple[dt.datetime, dt.datetime]], tmp: Path) -> Path:
        if timespan is None or "TimeGenerated" not in pq.read_schema(path).names:
            return path
        out = tmp / path.name
        start, end = (t.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat() for t in timespan)
        with duckdb.connect() as con:
            con.execute("SET TimeZone='UTC'")
            con.execute(
                f"COPY (SELECT * FROM read_parquet('{path}') WHERE TimeGenerated >= TIMESTAMP '{start}' "
                f"AND TimeGenerated < TIMESTAMP '{end}') TO '{out}' (FORMAT parquet)"
            )
        return out

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        workspace = self

        class Handler(BaseHTTPRequestHandler):
            """Routes POST /v1/workspaces/{id}/query to the workspace; anything else is a 404."""

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                """Record the request and send the workspace's reply."""
                match = _QUERY_PATH.match(self.path.split("?")[0])
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                if not match:
                    reply = Reply(404, error_body("PathNotFoundError", f"no route {self.path}"))
                else:
                    recorded = RecordedRequest(
                        workspace_id=match[1],
                        query=payload.get("query", ""),
                        timespan=payload.get("timespan"),
                        headers={k.lower(): v for k, v in self.headers.items()},
                    )
                    try:
                        reply = workspace.answer(recorded)
                    except Exception as err:  # a fake bug: surface it to the client as a 500
                        reply = Reply(500, error_body("InternalServerError", f"{type(err).__name__}: {err}"))
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                """Keep test output quiet."""

        return Handler
