"""`source=log_analytics` through the real azure-monitor-query client against a fake workspace.

The fake (`la_fake_server.FakeWorkspace`) runs the KQL it receives with duckdb-kql over fixture tables
stored under each deployment's own column names, so these tests execute the prelude's mapping and
compare the result with the local path on the same events.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from github_ueba.config import ConfigError, FeaturesConfig, LogAnalyticsSource, validate
from github_ueba.features.base import base_features
from github_ueba.kqltext import stored_functions
from github_ueba.sources.la_presets import mapping_query, prelude
from github_ueba.sources.log_analytics import (
    LogAnalyticsError,
    LogAnalyticsFeatureSource,
    render_query,
    resolve_workspace_id,
    table_to_frame,
)

from la_fake_server import PRESET_TABLES, FakeWorkspace, Reply, error_body, fixture_events, write_preset_table

HISTORY = dt.date(2026, 10, 1)
END = dt.date(2026, 11, 10)  # 40 output days [HISTORY, END)
SHORT = (dt.date(2026, 11, 1), dt.date(2026, 11, 9))  # 8 output days, history from HISTORY
PRESETS = list(PRESET_TABLES)


class StaticToken:
    """A credential that always hands out the same bearer token."""

    def __init__(self, token: str = "fake-token") -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class FailingCredential:
    """What DefaultAzureCredential does when no sign-in is available."""

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token.")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("la")
    pq.write_table(fixture_events(HISTORY, (END - HISTORY).days), folder / "events.parquet")
    for preset in PRESETS:
        write_preset_table(folder / "events.parquet", preset, folder)
    return folder


@pytest.fixture(scope="module")
def local_full(data_dir: Path) -> pd.DataFrame:
    return base_features(data_dir / "events.parquet", HISTORY, END, HISTORY, FeaturesConfig())


@pytest.fixture(scope="module")
def local_short(data_dir: Path) -> pd.DataFrame:
    return base_features(data_dir / "events.parquet", *SHORT, HISTORY, FeaturesConfig())


@pytest.fixture(scope="module")
def workspaces(data_dir: Path):
    fakes = {}
    for preset, (table, _) in PRESET_TABLES.items():
        fakes[preset] = FakeWorkspace({table: data_dir / f"{table}.parquet"}).start()
    yield fakes
    for fake in fakes.values():
        fake.stop()


@pytest.fixture()
def v2(workspaces: dict[str, FakeWorkspace]):
    fake = workspaces["github_audit_logs_v2"]
    fake.reset()
    yield fake
    fake.reset()


def make_source(fake: FakeWorkspace, credential: object = None, **settings: object) -> LogAnalyticsFeatureSource:
    cfg = LogAnalyticsSource(workspace_id=fake.workspace_id, endpoint=fake.endpoint,
                             preset=str(settings.pop("preset", "github_audit_logs_v2")), retry_total=2, **settings)
    return LogAnalyticsFeatureSource(cfg, FeaturesConfig(), credential=credential or StaticToken(),
                                     allow_loopback_http=True)


def chunk_ends(fake: FakeWorkspace) -> list[str]:
    """The chunk end of each request (its `| where day < datetime(...)` bound)."""
    return [r.query.rsplit("| where day < datetime(", 1)[1].rstrip(")") for r in fake.requests]


# ------------------------------------------------------------------------------ parity and chunking


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_gives_the_local_base_features(workspaces, local_full, preset):
    fake = workspaces[preset]
    fake.reset()
    got = make_source(fake, preset=preset, chunk_days=20).fetch_base_features(HISTORY, END, HISTORY)
    pd.testing.assert_frame_equal(got, local_full)
    assert chunk_ends(fake) == ["2026-10-21", "2026-11-10"]
    assert {r.timespan for r in fake.requests} == {"2026-10-01T00:00:00.000Z/2026-11-11T00:00:00.000Z"}
    assert all("let AuditEvents = (" in r.query and "wait=600" in r.headers["prefer"] for r in fake.requests)


def test_partial_result_splits_the_chunk(v2, local_short):
    v2.partial_above = 50  # the 8-day result has ~80 rows; each 4-day half fits
    got = make_source(v2, chunk_days=8).fetch_base_features(*SHORT, HISTORY)
    pd.testing.assert_frame_equal(got, local_short)
    assert chunk_ends(v2) == ["2026-11-09", "2026-11-05", "2026-11-09"]
    assert "ActorDayFeatures(datetime(2026-11-05)" in v2.requests[2].query


def test_row_limit_splits_the_chunk(v2, local_short):
    got = make_source(v2, chunk_days=8, max_rows=50).fetch_base_features(*SHORT, HISTORY)
    pd.testing.assert_frame_equal(got, local_short)
    assert chunk_ends(v2) == ["2026-11-09", "2026-11-05", "2026-11-09"]


def test_a_single_day_over_the_limit_fails_naming_the_day(v2):
    source = make_source(v2, chunk_days=2, max_rows=1)
    with pytest.raises(LogAnalyticsError, match=r"chunk 2026-11-01\.\.2026-11-01: one day is still too large"):
        source.fetch_base_features(dt.date(2026, 11, 1), dt.date(2026, 11, 3), HISTORY)
    assert chunk_ends(v2) == ["2026-11-03", "2026-11-02"]


def test_gateway_timeout_splits_the_chunk_instead_of_retrying(v2):
    v2.script.append(Reply(504, error_body("GatewayTimeout", "The query exceeded the server timeout.")))
    got = make_source(v2, chunk_days=2).fetch_base_features(dt.date(2026, 11, 1), dt.date(2026, 11, 3), HISTORY)
    assert chunk_ends(v2) == ["2026-11-03", "2026-11-02", "2026-11-03"]
    assert sorted(got["day"].dt.strftime("%Y-%m-%d").unique()) == ["2026-11-01", "2026-11-02"]


# ------------------------------------------------------------------------------ service failures


def test_throttled_request_is_retried_after_retry_after(v2):
    v2.script.append(Reply(429, error_body("ThrottledError", "Too many requests"), {"Retry-After": "1"}))
    got = make_source(v2, chunk_days=2).fetch_base_features(dt.date(2026, 11, 1), dt.date(2026, 11, 3), HISTORY)
    assert len(v2.requests) == 2 and v2.requests[0].query == v2.requests[1].query
    assert len(got) > 0 and got["events"].dtype == "int64"


def test_bad_request_names_the_chunk_and_the_service_error(v2):
    source = make_source(v2, chunk_days=2, columns={"actor": "NoSuchColumn"})
    with pytest.raises(LogAnalyticsError) as err:
        source.fetch_base_features(dt.date(2026, 11, 1), dt.date(2026, 11, 3), HISTORY)
    assert "chunk 2026-11-01..2026-11-02 (HTTP 400)" in str(err.value) and "NoSuchColumn" in str(err.value)


def test_expired_token_says_how_to_sign_in(v2):
    source = make_source(v2, credential=StaticToken("expired-token"))
    with pytest.raises(LogAnalyticsError) as err:
        source.fetch_base_features(*SHORT, HISTORY)
    message = str(err.value)
    assert "az login" in message and "AZURE_CLIENT_SECRET" in message and "2026-11-01..2026-11-08" in message
    assert len(v2.requests) == 1


def test_missing_sign_in_says_how_to_sign_in(v2):
    with pytest.raises(LogAnalyticsError, match="az login.*managed identity.*AZURE_CLIENT_ID"):
        make_source(v2, credential=FailingCredential()).fetch_base_features(*SHORT, HISTORY)
    assert v2.requests == []


def test_plain_http_is_refused_unless_a_test_allows_it_for_loopback(v2):
    cfg = LogAnalyticsSource(workspace_id=v2.workspace_id, endpoint=v2.endpoint, retry_total=0)
    with pytest.raises(LogAnalyticsError, match="non-TLS"):
        LogAnalyticsFeatureSource(cfg, FeaturesConfig(), credential=StaticToken()).fetch_base_features(*SHORT, HISTORY)
    assert v2.requests == []
    remote = LogAnalyticsSource(workspace_id=v2.workspace_id, endpoint="http://example.com")
    with pytest.raises(ConfigError, match="source.endpoint"):
        LogAnalyticsFeatureSource(remote, FeaturesConfig(), credential=StaticToken(), allow_loopback_http=True)


def test_service_types_become_the_local_types(v2):
    table = {"name": "PrimaryResult",
             "columns": [{"name": "actor", "type": "string"}, {"name": "day", "type": "datetime"},
                         {"name": "events", "type": "long"}, {"name": "score", "type": "real"},
                         {"name": "ok", "type": "bool"}, {"name": "id", "type": "guid"}],
             "rows": [["bob", "2026-11-02T00:00:00Z", 3, 0.5, True, None],
                      ["alice", "2026-11-01T00:00:00.0000000Z", 7, 1.5, False, "7f1c0000-0000-0000-0000-000000000001"]]}
    v2.script.append(Reply(200, {"tables": [table]}))
    result = make_source(v2).client.query_workspace(v2.workspace_id, "x", timespan=None, enforce_https=False)
    got = table_to_frame(result.tables[0])
    assert str(got["day"].dtype) == "datetime64[us]" and got["day"].tolist() == [pd.Timestamp("2026-11-02"),
                                                                                 pd.Timestamp("2026-11-01")]
    assert got["events"].dtype == "int64" and got["score"].dtype == "float64" and got["ok"].dtype == "bool"
    assert got["actor"].dtype == "str" and got["id"].isna().tolist() == [True, False]


def test_a_result_without_the_feature_columns_is_refused(v2):
    table = {"name": "PrimaryResult", "columns": [{"name": "actor", "type": "string"},
                                                  {"name": "day", "type": "datetime"}],
             "rows": [["bob", "2026-11-02T00:00:00Z"]]}
    v2.script.append(Reply(200, {"tables": [table]}))
    with pytest.raises(LogAnalyticsError, match=r"lacks columns \['events'"):
        make_source(v2, chunk_days=8).fetch_base_features(*SHORT, HISTORY)


# ------------------------------------------------------------------------------ saved functions


def test_saved_functions_mode_sends_only_the_call(data_dir, local_short):
    table = PRESET_TABLES["github_audit_logs_v2"][0]
    mapping = f"function GH_Audit_Logs_CL() {{ {mapping_query('github_audit_logs_v2')} }}"
    fake = FakeWorkspace({table: data_dir / f"{table}.parquet"}, saved_functions=[*stored_functions(), mapping]).start()
    try:
        got = make_source(fake, chunk_days=8, use_saved_functions=True).fetch_base_features(*SHORT, HISTORY)
        pd.testing.assert_frame_equal(got, local_short)
        assert fake.requests[0].query.startswith("ActorDayFeatures(") and "let " not in fake.requests[0].query
        fake.saved_functions = None
        with pytest.raises(LogAnalyticsError, match="HTTP 400.*must be saved in the workspace"):
            make_source(fake, chunk_days=8, use_saved_functions=True).fetch_base_features(*SHORT, HISTORY)
    finally:
        fake.stop()


# ------------------------------------------------------------------------------ config and rendering


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"table": "GH; drop table x"}, "source.table"),
        ({"table": "GitHubAuditLogsV2_CL | take 1"}, "source.table"),
        ({"columns": {"actor": "Actor) | take 1 //"}}, "source.columns.actor"),
        ({"columns": {"actor": "1Actor"}}, "source.columns.actor"),
        ({"columns": {"actor": "Actor:datetime"}}, "source.columns.actor"),
        ({"columns": {"timestamp": ""}}, "source.columns.timestamp"),
        ({"columns": {"nonsense": "X"}}, "source.columns.nonsense"),
        ({"preset": "splunk"}, "source.preset"),
    ],
)
def test_bad_names_are_refused_before_any_request(settings, key):
    with pytest.raises(ConfigError, match=rf"config key '{key}'"):
        prelude(settings.get("preset", "github_audit_logs_v2"), settings.get("table"), settings.get("columns"))


def test_overrides_change_the_mapping():
    text = prelude("github_audit_logs_v2", table="GitHubAuditLogsV3_CL",
                   columns={"timestamp": "CreatedAt:epoch_ms", "actor_ip": "", "actor_id": "ActorId:number"})
    assert text.startswith("let GH_Audit_Logs_CL = ['GitHubAuditLogsV3_CL']")
    assert "['timestamp'] = tolong(['CreatedAt'])" in text and "['actor_ip'] = ''," in text
    assert "['actor_id'] = tostring(tolong(['ActorId']))" in text


def test_workspace_id_comes_from_config_env_or_dotenv(tmp_path, monkeypatch):
    monkeypatch.delenv("AZ_WORKSPACE_ID", raising=False)
    assert resolve_workspace_id(LogAnalyticsSource(workspace_id="abc-123"), cwd=tmp_path) == "abc-123"
    with pytest.raises(ConfigError, match="AZ_WORKSPACE_ID.*\\.env"):
        resolve_workspace_id(LogAnalyticsSource(), cwd=tmp_path)
    (tmp_path / ".env").write_text("AZ_WORKSPACE_ID=from-dotenv-1\n")
    assert resolve_workspace_id(LogAnalyticsSource(), cwd=tmp_path) == "from-dotenv-1"
    monkeypatch.setenv("AZ_WORKSPACE_ID", "from-env-2")
    assert resolve_workspace_id(LogAnalyticsSource(), cwd=tmp_path) == "from-env-2"
    with pytest.raises(ConfigError, match="not a workspace id"):
        resolve_workspace_id(LogAnalyticsSource(workspace_id="../../admin"), cwd=tmp_path)


def test_kql_print_renders_the_whole_window():
    inline = render_query(validate({"source": {"name": "log_analytics"}, "window": {"end": "2026-11-30"}}))
    assert inline.startswith("let GH_Audit_Logs_CL = ['GH_Audit_Logs_CL']")
    assert "\n\n" not in inline  # Kusto ends a statement at a blank line
    assert inline.rstrip().endswith("ActorDayFeatures(datetime(2026-06-03), datetime(2026-12-01), "
                                    "datetime(2026-06-03), 14, real(3.0))")
    saved = render_query(validate({"source": {"name": "log_analytics", "preset": "github_audit_log_polling",
                                              "use_saved_functions": True}, "window": {"end": "2026-11-30"}}))
    code = [line for line in saved.splitlines() if not line.startswith("//")]
    assert "//     ['GitHubAuditLogPolling_CL']" in saved and code == [inline.splitlines()[-1]]
