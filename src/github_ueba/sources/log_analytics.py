"""`source=log_analytics`: run the kql/ functions inside an Azure Log Analytics workspace.

The functions are sent inline (`let` definitions before the call) unless `use_saved_functions` says
they are saved in the workspace; a prelude (`la_presets`) maps the deployment's table onto
`GH_Audit_Logs_CL`. The window's output days are fetched in chunks; a chunk that comes back partial,
timed out or too large is split in half down to one day. Every chunk runs the call over the whole
window and keeps its own days (`| where day < chunk_end`), because the actor's usual hours and the
removal date are computed up to `endtime`: the numbers do not depend on `chunk_days`. Throttling and
5xx are retried by azure-core (which honours Retry-After). Only the actor-day rows leave the workspace.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
import time
from collections import deque
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

import pandas as pd

from github_ueba.config import Config, ConfigError, FeaturesConfig, LogAnalyticsSource
from github_ueba.errors import UebaError
from github_ueba.events import KQL_TABLE
from github_ueba.features.base import BASE_FEATURE_COLUMNS, empty_base_features
from github_ueba.sources.la_presets import mapping_query, prelude, reads_table_directly

log = logging.getLogger(__name__)

#: Env var (or `.env` key) holding the workspace id when the config does not.
WORKSPACE_ENV = "AZ_WORKSPACE_ID"
#: Added to each query's timespan end: Log Analytics filters the timespan on TimeGenerated (ingestion
#: time for most custom tables), so events ingested up to this late still reach the kql/ filter.
INGESTION_SLACK = dt.timedelta(days=1)
AUTH_HELP = (
    "sign in with `az login`, run where a managed identity is assigned, or set AZURE_CLIENT_ID, "
    "AZURE_TENANT_ID and AZURE_CLIENT_SECRET (env or .env) for a service principal; the identity "
    "needs the Log Analytics Reader role on the workspace"
)
_WORKSPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


class LogAnalyticsError(UebaError):
    """The workspace refused or failed a query; the message names the chunk and what to do."""


def resolve_workspace_id(cfg: LogAnalyticsSource, cwd: Optional[Path] = None) -> str:
    """`source.workspace_id`, else env AZ_WORKSPACE_ID, else `.env` in the cwd (loaded into the env)."""
    value = cfg.workspace_id
    if not value:
        from dotenv import load_dotenv

        load_dotenv(Path(cwd or Path.cwd()) / ".env", override=False)
        value = os.environ.get(WORKSPACE_ENV, "").strip()
    if not value:
        raise ConfigError(
            f"config key 'source.workspace_id': not set; set it, or export {WORKSPACE_ENV}=<workspace GUID>, "
            f"or put {WORKSPACE_ENV}=<workspace GUID> in ./.env (see docs/azure.md)"
        )
    if not _WORKSPACE_ID.fullmatch(value):
        raise ConfigError(f"config key 'source.workspace_id': {value!r} is not a workspace id (a GUID)")
    return value


def day_chunks(start: dt.date, end: dt.date, chunk_days: int) -> list[tuple[dt.date, dt.date]]:
    """[start, end) cut into consecutive [chunk_start, chunk_end) pieces of at most `chunk_days` days."""
    if chunk_days < 1:
        raise ConfigError(f"config key 'source.chunk_days': {chunk_days} must be >= 1")
    total = (end - start).days
    return [
        (start + dt.timedelta(days=i), start + dt.timedelta(days=min(i + chunk_days, total)))
        for i in range(0, max(total, 0), chunk_days)
    ]


def build_query(
    cfg: LogAnalyticsSource,
    features: FeaturesConfig,
    start: dt.date,
    end: dt.date,
    history_start: dt.date,
    days_before: Optional[dt.date] = None,
) -> str:
    """The query for output days [start, end), history from `history_start`; `days_before` keeps earlier days only.

    Inline mode sends the mapping prelude and the kql/ functions; saved-functions mode sends only the
    call, because a saved function resolves `GH_Audit_Logs_CL` in the workspace, not in the query.
    """
    from github_ueba.kqltext import features_query, kql_datetime

    query = features_query(
        start,
        end,
        history_start,
        new_repo_days=features.new_repo_days,
        off_hours_z=features.off_hours_z,
        prelude="" if cfg.use_saved_functions else prelude(cfg.preset, cfg.table, cfg.columns),
        inline=not cfg.use_saved_functions,
    )
    return query if days_before is None else f"{query}\n| where day < {kql_datetime(days_before)}"


def saved_functions_note(cfg: LogAnalyticsSource) -> str:
    """KQL comment lines saying what saved-functions mode expects in the workspace (with the mapping to save)."""
    lines = ["saved-functions mode (source.use_saved_functions=true): the workspace must hold the kql/*.kql",
             "functions saved under their file names (see docs/azure.md)."]
    if reads_table_directly(cfg.preset, cfg.table, cfg.columns):
        lines.append(f"They read the table {KQL_TABLE} directly; it must have the canonical columns and types.")
    else:
        lines.append(f"Also save this mapping as a function named {KQL_TABLE} with no parameters:")
        lines.extend("    " + line for line in mapping_query(cfg.preset, cfg.table, cfg.columns).splitlines())
    return "\n".join("// " + line for line in lines)


def render_query(cfg: Config) -> str:
    """The whole-window query `github-ueba kql print` shows (paste into the portal's Logs blade)."""
    from github_ueba.window import last_full_day, resolve

    source = cfg.source if isinstance(cfg.source, LogAnalyticsSource) else LogAnalyticsSource()
    window = resolve(cfg.window, last_full_day(None))
    query = build_query(source, cfg.features, window.start, window.end_exclusive, window.start)
    return f"{saved_functions_note(source)}\n{query}" if source.use_saved_functions else query


def _is_loopback_http(endpoint: str) -> bool:
    url = urlparse(endpoint)
    if url.scheme != "http" or not url.hostname:
        return False
    if url.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(url.hostname).is_loopback
    except ValueError:
        return False


def _retry_policy(cfg: LogAnalyticsSource) -> Any:
    """azure-core's retry (429 with Retry-After, 500/502/503, connection errors), minus 504.

    A 504 means the query ran past `server_timeout`; the same query would time out again, so it is
    not retried but split instead.
    """
    from azure.core.pipeline.policies import RetryPolicy

    class QueryRetryPolicy(RetryPolicy):
        """RetryPolicy that leaves 504 to the caller."""

        def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
            """azure-core's decision, except never for a 504."""
            if response.http_response.status_code == 504:
                return False
            return super().is_retry(settings, response)

    return QueryRetryPolicy(retry_total=cfg.retry_total, retry_status=cfg.retry_total)


def _to_utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc)


def _span(start: dt.date, end: dt.date) -> str:
    return f"{start.isoformat()}..{(end - dt.timedelta(days=1)).isoformat()}"


def table_to_frame(table: Any) -> pd.DataFrame:
    """A `LogsTable` as a DataFrame typed like the local path: datetimes tz-naive UTC, longs int64."""
    names, kinds = list(table.columns), list(table.columns_types)
    raw = pd.DataFrame(table.rows, columns=names, dtype=object)
    out: dict[str, pd.Series] = {}
    for name, kind in zip(names, kinds):
        col = raw[name]
        if kind == "datetime":
            out[name] = pd.to_datetime(col, utc=True).dt.tz_localize(None).astype("datetime64[us]")
        elif kind in ("long", "int"):
            out[name] = col.astype("int64") if col.notna().all() else col.astype("Int64")
        elif kind in ("real", "decimal"):
            out[name] = col.astype("float64")
        elif kind == "bool":
            out[name] = col.astype("bool") if col.notna().all() else col.astype("boolean")
        elif kind in ("guid", "timespan"):
            out[name] = col.where(col != "None").astype("str")
        elif kind == "string":
            out[name] = col.astype("str")
        else:
            out[name] = col
    frame = pd.DataFrame(out, columns=names)
    if "day" in frame:
        frame["day"] = frame["day"].dt.floor("D")
    return frame


class LogAnalyticsFeatureSource:
    """Base features per actor-day computed by the kql/ functions in a Log Analytics workspace."""

    def __init__(
        self,
        cfg: LogAnalyticsSource,
        features: FeaturesConfig,
        credential: Any = None,
        client: Any = None,
        *,
        allow_loopback_http: bool = False,
    ) -> None:
        """`allow_loopback_http` lets tests talk plain HTTP to a fake on 127.0.0.1; nothing else may."""
        self.cfg = cfg
        self.features = features
        self.workspace_id = resolve_workspace_id(cfg)
        prelude(cfg.preset, cfg.table, cfg.columns)  # fail on a bad mapping before any request
        if cfg.max_rows < 1 or cfg.server_timeout < 1:
            raise ConfigError("config keys 'source.max_rows' and 'source.server_timeout' must be >= 1")
        self._call_options: dict[str, Any] = {}
        if allow_loopback_http:
            if not _is_loopback_http(cfg.endpoint):
                raise ConfigError(f"config key 'source.endpoint': plain HTTP is only for a loopback test server, "
                                  f"not {cfg.endpoint!r}")
            self._call_options["enforce_https"] = False
        self.client = client or self._make_client(credential)

    def _make_client(self, credential: Any) -> Any:
        """The real client: our retry policy, a read timeout past `server_timeout`; azure-core's per-request
        INFO logging is kept at WARNING unless the `azure` logger was configured."""
        from azure.monitor.query import LogsQueryClient

        azure_log = logging.getLogger("azure")
        if azure_log.level == logging.NOTSET:
            azure_log.setLevel(logging.WARNING)

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return LogsQueryClient(
            credential,
            endpoint=self.cfg.endpoint,
            retry_policy=_retry_policy(self.cfg),
            read_timeout=self.cfg.server_timeout + 30,
        )

    def fetch_base_features(self, start: dt.date, end: dt.date, history_start: dt.date) -> pd.DataFrame:
        """Base features for output days [start, end), history from `history_start`, sorted by actor, day."""
        pending = deque(day_chunks(start, end, self.cfg.chunk_days))
        frames: list[pd.DataFrame] = []
        while pending:
            chunk_start, chunk_end = pending.popleft()
            frame = self._query_chunk(chunk_start, chunk_end, end, history_start)
            if frame is not None:
                frames.append(frame)
                continue
            days = (chunk_end - chunk_start).days
            if days <= 1:
                raise LogAnalyticsError(
                    f"Log Analytics chunk {_span(chunk_start, chunk_end)}: one day is still too large "
                    f"(partial result, timeout, or >= source.max_rows={self.cfg.max_rows} rows); aggregate more "
                    f"in KQL or raise source.max_rows / source.server_timeout (service limits: 500,000 rows, "
                    f"~64 MB, 10 minutes per query)"
                )
            middle = chunk_start + dt.timedelta(days=days // 2)
            log.info("log_analytics: splitting chunk %s into %s and %s", _span(chunk_start, chunk_end),
                     _span(chunk_start, middle), _span(middle, chunk_end))
            pending.extendleft([(middle, chunk_end), (chunk_start, middle)])
        if not frames:
            return empty_base_features()
        result = pd.concat(frames, ignore_index=True)
        missing = [c for c in BASE_FEATURE_COLUMNS if c not in result]
        if missing:
            raise LogAnalyticsError(
                f"Log Analytics window {_span(start, end)}: the result lacks columns {missing} "
                f"(out-of-date saved functions? re-save kql/ or set source.use_saved_functions=false)"
            )
        result = result[list(BASE_FEATURE_COLUMNS)]
        return result.sort_values(["actor", "day"], kind="stable").reset_index(drop=True)

    def _query_chunk(
        self, chunk_start: dt.date, chunk_end: dt.date, end: dt.date, history_start: dt.date
    ) -> Optional[pd.DataFrame]:
        """Days [chunk_start, chunk_end) of the window ending at `end`, or None when the chunk must be split."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )
        from azure.monitor.query import LogsQueryStatus

        span = _span(chunk_start, chunk_end)
        query = build_query(self.cfg, self.features, chunk_start, end, history_start, days_before=chunk_end)
        timespan = (_to_utc(history_start), _to_utc(end) + INGESTION_SLACK)
        started = time.perf_counter()
        try:
            result = self.client.query_workspace(
                self.workspace_id, query, timespan=timespan, server_timeout=self.cfg.server_timeout,
                **self._call_options,
            )
        except HttpResponseError as err:
            # the client re-raises every failure as a plain HttpResponseError; a credential that could not
            # get a token (no response) or a 401 shows up as ClientAuthenticationError in the chain
            if isinstance(err, ClientAuthenticationError) or isinstance(err.__context__, ClientAuthenticationError):
                raise LogAnalyticsError(f"Log Analytics chunk {span}: not authenticated ({_first_line(err)}); "
                                        f"{AUTH_HELP}") from None
            return self._http_error(err, span)
        except (ServiceRequestError, ServiceResponseError) as err:
            raise LogAnalyticsError(f"Log Analytics chunk {span}: cannot reach {self.cfg.endpoint}: "
                                    f"{_first_line(err)}") from None
        seconds = time.perf_counter() - started
        if result.status == LogsQueryStatus.PARTIAL:
            log.warning("log_analytics: chunk %s came back partial after %.1f s (%s)", span, seconds,
                        result.partial_error.message if result.partial_error else "no detail")
            return None
        if not result.tables:
            raise LogAnalyticsError(f"Log Analytics chunk {span}: the service returned no result table")
        table = result.tables[0]
        log.info("log_analytics: chunk %s: %d rows in %.1f s", span, len(table.rows), seconds)
        if len(table.rows) >= self.cfg.max_rows:
            log.warning("log_analytics: chunk %s reached source.max_rows=%d", span, self.cfg.max_rows)
            return None
        return table_to_frame(table)

    def _http_error(self, err: Any, span: str) -> None:
        """Turn a failed request into a clear error; a 504 (server_timeout) asks for a split instead."""
        status = getattr(err, "status_code", None)
        detail = _service_message(err)
        if status == 504:
            log.warning("log_analytics: chunk %s ran past source.server_timeout=%d s", span, self.cfg.server_timeout)
            return None
        if status in (401, 403):
            raise LogAnalyticsError(f"Log Analytics chunk {span}: HTTP {status} {detail}; {AUTH_HELP}") from None
        if status == 400:
            saved = (" With source.use_saved_functions=true the kql/ functions (and the mapping) must be saved "
                     "in the workspace." if self.cfg.use_saved_functions else "")
            raise LogAnalyticsError(
                f"Log Analytics rejected the query for chunk {span} (HTTP 400): {detail}. Check source.preset, "
                f"source.table and source.columns against the workspace (`github-ueba kql print "
                f"source=log_analytics` shows the query).{saved}"
            ) from None
        if status == 429:
            raise LogAnalyticsError(f"Log Analytics chunk {span}: still throttled (HTTP 429) after "
                                    f"source.retry_total={self.cfg.retry_total} retries: {detail}") from None
        raise LogAnalyticsError(f"Log Analytics chunk {span}: HTTP {status}: {detail}") from None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _service_message(err: Any) -> str:
    """The service's own error text (code and innermost message) when it sent one."""
    model = getattr(err, "model", None)
    code, message = getattr(model, "code", None), getattr(model, "message", None)
    if message:
        return f"{code}: {message}" if code else str(message)
    return _first_line(err)
