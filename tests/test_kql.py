"""The kql/ functions run through duckdb-kql on hand-made events; expected numbers worked out by hand.

Calendar used throughout: 2025-01-01 is a Wednesday. History starts Jan 1, scored days are
Jan 6 (Mon) .. Jan 12 (Sun), so Jan 11 and Jan 12 are the weekend. The main feature run uses
new_repo_days=3 (a repo is new on days 0, 1, 2 after first access) and off_hours_z=3.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from github_ueba.config import FeaturesConfig
from github_ueba.errors import InputError
from github_ueba.events import EVENT_SCHEMA, KQL_TABLE
from github_ueba.features.base import BASE_FEATURE_COLUMNS, base_features, run_kql
from github_ueba.kql_runner import KqlLibraryMissing, KqlRunnerError, check_kql_lib, parse_errors, translate
from github_ueba.kqltext import (
    KqlTextError,
    features_query,
    inline_definitions,
    load_functions,
    stored_functions,
)

HISTORY_START = dt.date(2025, 1, 1)
START = dt.date(2025, 1, 6)
END = dt.date(2025, 1, 13)
SETTINGS = FeaturesConfig(new_repo_days=3, off_hours_z=3.0)
PRELUDE = f"let {KQL_TABLE} = Events;"  # the events file is registered as `Events` below


def event(when: str, actor: str, action: str, **fields: Any) -> dict[str, Any]:
    """One event; `when` is an ISO time in UTC."""
    stamp = dt.datetime.fromisoformat(when).replace(tzinfo=dt.timezone.utc)
    return {"timestamp": int(stamp.timestamp() * 1000), "actor": actor, "action": action, **fields}


def write_events(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write rows as an EVENT_SCHEMA Parquet file (missing fields are null)."""
    columns = {name: [row.get(name) for row in rows] for name in EVENT_SCHEMA.names}
    pq.write_table(pa.table(columns, schema=EVENT_SCHEMA), path)
    return path


def regular_hours(actor: str, days: range, hours: list[int]) -> list[dict[str, Any]]:
    """`actor` does one git.fetch at each of `hours` on each January day in `days`."""
    return [event(f"2025-01-{d:02d}T{h:02d}:00", actor, "git.fetch", repo="o/x") for d in days for h in hours]


EVENTS = [
    # team t1, t2, t3 first access o/team on Jan 9 together (shared), t1 also clones o/solo alone.
    event("2025-01-09T09:00", "t1", "git.clone", repo="o/team"),
    event("2025-01-09T09:05", "t1", "git.clone", repo="o/team"),
    event("2025-01-09T09:10", "t1", "git.clone", repo="o/solo"),
    event("2025-01-09T10:00", "t2", "git.clone", repo="o/team"),
    event("2025-01-09T11:00", "t3", "git.clone", repo="o/team"),
    # t4 first touches o/team a day later: not part of the shared first-access day.
    event("2025-01-10T11:00", "t4", "git.clone", repo="o/team"),
    # alice: history on Jan 2, then new ip / repo / action on Jan 6 and new country / action on Jan 7.
    event("2025-01-02T10:00", "alice", "git.clone", repo="o/a", actor_ip="10.0.0.1", country_code="US"),
    event("2025-01-06T10:00", "alice", "git.push", repo="o/a", actor_ip="10.0.0.1", country_code="US"),
    event("2025-01-06T11:00", "alice", "git.clone", repo="o/b", actor_ip="10.0.0.2", country_code="US"),
    event("2025-01-07T12:00", "alice", "repo.download_zip", repo="o/b", actor_ip="10.0.0.2", country_code="DE"),
    # nina: first access to o/n on Jan 4 (day 0); Jan 6 is day 2 (new), Jan 7 is day 3 (not new).
    event("2025-01-04T09:00", "nina", "git.clone", repo="o/n"),
    event("2025-01-06T09:00", "nina", "git.clone", repo="o/n"),
    event("2025-01-07T09:00", "nina", "git.push", repo="o/n"),
    # lee: active Jan 6, 8 and 10; removed from the org by admin on Jan 9 15:00.
    event("2025-01-06T09:00", "lee", "git.fetch", repo="o/l"),
    event("2025-01-08T09:00", "lee", "git.fetch", repo="o/l"),
    event("2025-01-09T15:00", "admin", "org.remove_member", user="lee"),
    event("2025-01-10T09:00", "lee", "git.fetch", repo="o/l"),
    # walt: Friday, Saturday, Sunday.
    event("2025-01-10T09:00", "walt", "git.fetch", repo="o/w"),
    event("2025-01-11T09:00", "walt", "git.fetch", repo="o/w"),
    event("2025-01-12T09:00", "walt", "git.fetch", repo="o/w"),
    # mallory on Jan 8: one event per high-risk group, then near misses that must count nowhere.
    event("2025-01-08T09:00", "mallory", "protected_branch.destroy", repo="o/m"),
    event("2025-01-08T09:01", "mallory", "repository_secret_scanning_push_protection.disable", repo="o/m"),
    event("2025-01-08T09:02", "mallory", "dependabot_alerts.disable"),
    event("2025-01-08T09:03", "mallory", "org.disable_two_factor_requirement"),
    event("2025-01-08T09:04", "mallory", "org.update_member", user="eve", permission="admin"),
    event("2025-01-08T09:05", "mallory", "hook.create", repo="o/m"),
    event("2025-01-08T09:06", "mallory", "repo.access", repo="o/m", visibility="public"),
    event("2025-01-08T09:07", "mallory", "repo.create", repo="o/m2"),
    event("2025-01-08T09:08", "mallory", "repo.remove_member", repo="o/m", user="bob"),
    event("2025-01-08T09:09", "mallory", "repo.access", repo="o/m", visibility="private"),
    event("2025-01-08T09:10", "mallory", "org.update_member", user="eve", permission="read"),
    event("2025-01-08T09:11", "mallory", "repository_secret_scanning_protection.disable", repo="o/m"),
    event("2025-01-08T09:12", "mallory", "repository_branch_protection_ evaluation.disable", repo="o/m"),
    # sam: one event only (hour std 0, floored to 1 hour).
    event("2025-01-09T23:00", "sam", "git.fetch", repo="o/s"),
    # outside the windows: before history_start, at end (excluded), and no actor.
    event("2024-12-31T23:59", "alice", "git.push", repo="o/z", actor_ip="10.9.9.9"),
    event("2025-01-13T00:00", "alice", "git.push", repo="o/z"),
    {**event("2025-01-08T09:00", "x", "git.clone", repo="o/a"), "actor": None},
    # olga: twenty fetches at 10:00 (two a day, Jan 1-10) and one at 02:00 on Jan 8.
    *regular_hours("olga", range(1, 11), [10, 10]),
    event("2025-01-08T02:00", "olga", "git.fetch", repo="o/x"),
    # fred: nineteen at 10:00 and one at 13:00 on Jan 9 (std below one hour).
    *regular_hours("fred", range(1, 11), [10, 10])[:19],
    event("2025-01-09T13:00", "fred", "git.fetch", repo="o/x"),
]


@pytest.fixture(scope="module")
def events_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-made events above, as an EVENT_SCHEMA Parquet file."""
    return write_events(EVENTS, tmp_path_factory.mktemp("kql") / "events.parquet")


@pytest.fixture(scope="module")
def features(events_path: Path) -> pd.DataFrame:
    """base_features over the scored days, indexed by (actor, day)."""
    frame = base_features(events_path, START, END, HISTORY_START, SETTINGS)
    return frame.set_index(["actor", frame["day"].dt.strftime("%m-%d")])


def row(features: pd.DataFrame, actor: str, day: str) -> pd.Series:
    """The feature row of `actor` on January `day` (MM-DD)."""
    return features.loc[(actor, day)]


def test_output_contract(events_path: Path) -> None:
    frame = base_features(events_path, START, END, HISTORY_START, SETTINGS)
    assert list(frame.columns) == list(BASE_FEATURE_COLUMNS)
    assert pd.api.types.is_string_dtype(frame["actor"])
    assert pd.api.types.is_datetime64_any_dtype(frame["day"]) and frame["day"].dt.tz is None
    assert all(frame[c].dtype == "int64" for c in BASE_FEATURE_COLUMNS[2:])
    assert (frame["day"] == frame["day"].dt.normalize()).all()
    keys = list(frame[["actor", "day"]].itertuples(index=False))
    assert keys == sorted(keys)
    # one row per active (actor, day) in [Jan 6, Jan 13): nina's Jan 4, alice's Dec 31 and Jan 13 00:00
    # events give no row, nor does the event without an actor; olga and fred are active Jan 6-10.
    expected = {
        "alice": ["06", "07"], "nina": ["06", "07"], "lee": ["06", "08", "10"], "admin": ["09"],
        "walt": ["10", "11", "12"], "mallory": ["08"], "sam": ["09"],
        "olga": ["06", "07", "08", "09", "10"], "fred": ["06", "07", "08", "09", "10"],
        "t1": ["09"], "t2": ["09"], "t3": ["09"], "t4": ["10"],
    }
    got = frame.groupby("actor")["day"].agg(lambda days: [f"{d:%d}" for d in days]).to_dict()
    assert got == expected


def test_first_seen_across_days(features: pd.DataFrame) -> None:
    jan6, jan7 = row(features, "alice", "01-06"), row(features, "alice", "01-07")
    # Jan 6: push o/a from 10.0.0.1 (seen Jan 2) + clone o/b from 10.0.0.2 (new ip, new repo);
    # git.push never done before (git.clone was, Jan 2); US seen Jan 2. The Dec 31 event is
    # before history_start and does not count as "seen".
    first_seen = ["first_seen_ips", "first_seen_repos", "first_seen_actions", "first_seen_countries"]
    uniques = ["events", "unique_repos", "unique_ips", "unique_countries", "unique_actions"]
    assert jan6[uniques].tolist() == [2, 2, 2, 1, 2]
    assert jan6[first_seen].tolist() == [1, 1, 1, 0]
    # Jan 7: download o/b from 10.0.0.2 in DE: only the country and the action are new.
    assert jan7[first_seen].tolist() == [0, 0, 1, 1]
    assert (jan6.git_push, jan6.git_clone, jan7.repo_download) == (1, 1, 1)


def test_new_repos_window_boundary(features: pd.DataFrame) -> None:
    # alice Jan 6: o/a first accessed Jan 2 (day 4, not new with 3 days), o/b first accessed today.
    alice6, alice7 = row(features, "alice", "01-06"), row(features, "alice", "01-07")
    assert (alice6.new_repos, alice6.new_repo_clones, alice6.new_repo_pushes) == (1, 1, 0)
    assert (alice7.new_repos, alice7.new_repo_downloads) == (1, 1)  # o/b on its day 1
    # nina: o/n first accessed Jan 4 -> Jan 6 is day 2 (new), Jan 7 is day 3 (no longer new).
    nina6, nina7 = row(features, "nina", "01-06"), row(features, "nina", "01-07")
    assert (nina6.new_repos, nina6.new_repo_clones, nina6.first_seen_repos) == (1, 1, 0)
    assert (nina7.new_repos, nina7.new_repo_pushes, nina7.git_push) == (0, 0, 1)


def test_off_hours(features: pd.DataFrame) -> None:
    # olga: hours = twenty 10s and one 2 -> mean 202/21 = 9.62, sample std 1.75, 3 std = 5.24;
    # |2 - 9.62| = 7.62 is off-hours, |10 - 9.62| = 0.38 is not.
    assert row(features, "olga", "01-08").off_hours_events == 1
    assert row(features, "olga", "01-09").off_hours_events == 0
    # fred: nineteen 10s and one 13 -> mean 10.15, std 0.67 (3 std = 2.01 < 2.85 would flag 13:00),
    # but the std is floored at 1 hour: 3 * 1 = 3 > 2.85, so nothing is off-hours.
    assert row(features, "fred", "01-09").off_hours_events == 0
    # sam: a single event -> std 0, floored to 1; the event is at the mean.
    assert row(features, "sam", "01-09").off_hours_events == 0


def test_shared_first_access_is_counted_apart(features: pd.DataFrame) -> None:
    t1 = row(features, "t1", "01-09")
    # o/team: first accessed on Jan 9 by t1, t2, t3 (3 actors) -> shared; o/solo: t1 alone -> solo.
    assert (t1.new_repos, t1.new_repo_clones, t1.first_seen_repos) == (1, 1, 1)
    assert (t1.shared_new_repos, t1.shared_new_repo_clones, t1.shared_first_seen_repos) == (1, 2, 1)
    t2 = row(features, "t2", "01-09")
    assert (t2.new_repos, t2.shared_new_repos, t2.shared_first_seen_repos) == (0, 1, 1)
    # t4's first access (Jan 10) is shared by nobody else that day.
    t4 = row(features, "t4", "01-10")
    assert (t4.new_repos, t4.first_seen_repos, t4.shared_new_repos) == (1, 1, 0)


def test_leaver(features: pd.DataFrame) -> None:
    # lee removed Jan 9 15:00: 3 days ahead on Jan 6, 1 on Jan 8, and -1 on Jan 10 (after removal).
    assert [row(features, "lee", d).is_leaver for d in ("01-06", "01-08", "01-10")] == [1, 1, 1]
    assert [row(features, "lee", d).days_to_removal for d in ("01-06", "01-08", "01-10")] == [3, 1, -1]
    admin = row(features, "admin", "01-09")
    assert (admin.members_removed, admin.is_leaver, admin.days_to_removal) == (1, 0, -1)


def test_weekend(features: pd.DataFrame) -> None:
    # Jan 10 2025 is a Friday, Jan 11 a Saturday, Jan 12 a Sunday.
    assert [row(features, "walt", d).is_weekend for d in ("01-10", "01-11", "01-12")] == [0, 1, 1]


def test_high_risk_groups_each_hit_once(features: pd.DataFrame) -> None:
    mallory = row(features, "mallory", "01-08")
    groups = ["protection_changes", "secret_scanning_disabled", "security_alerts_disabled", "org_security_weakened",
              "access_granted", "persistence", "repo_exposure", "repo_create", "members_removed"]
    # one event per group; the private repo.access, the read-permission update and the paper's two
    # misspelt actions count in none.
    assert mallory[groups].to_dict() == dict.fromkeys(groups, 1)
    assert mallory.events == 13
    others = features.drop(index=[("mallory", "01-08"), ("admin", "01-09")])
    assert (others[groups] == 0).all().all()


def test_actor_stats(events_path: Path) -> None:
    query = f"{PRELUDE}\nActorStats(datetime(2025-01-01), datetime(2025-01-13))"
    stats = run_kql(query, {"Events": events_path}).to_pandas().set_index("actor")
    lee = stats.loc["lee"]
    # lee: three fetches at 09:00 on Jan 6, 8, 10; removed by admin Jan 9 15:00.
    assert (lee.events, lee.active_days, lee.hour_mean, lee.hour_std) == (3, 3, 9.0, 0.0)
    assert lee.removed_at == pd.Timestamp("2025-01-09 15:00")
    assert (lee.first_seen, lee.last_seen) == (pd.Timestamp("2025-01-06 09:00"), pd.Timestamp("2025-01-10 09:00"))
    # alice in the window: 10, 10, 11, 12 o'clock -> mean 10.75; the Dec 31 and Jan 13 pushes are outside.
    assert (stats.loc["alice"].events, stats.loc["alice"].hour_mean) == (4, 10.75)
    assert pd.isna(stats.loc["alice"].removed_at)


def test_actor_repo_usage(events_path: Path) -> None:
    query = f"{PRELUDE}\nActorRepoUsage(datetime(2025-01-01), datetime(2025-01-13))"
    usage = run_kql(query, {"Events": events_path}).to_pandas().set_index(["actor", "repo"])
    a = usage.loc[("alice", "o/a")]
    # clone Jan 2 10:00, push Jan 6 10:00
    assert (a.first_access, a.last_access) == (pd.Timestamp("2025-01-02 10:00"), pd.Timestamp("2025-01-06 10:00"))
    assert (a.active_days, a.events, a.clones, a.pushes, a.downloads) == (2, 2, 1, 1, 0)
    b = usage.loc[("alice", "o/b")]
    assert (b.active_days, b.clones, b.downloads) == (2, 1, 1)
    # the Dec 31 and Jan 13 pushes to o/z are outside the window; admin's removal names no repo
    assert ("alice", "o/z") not in usage.index and "admin" not in usage.index.get_level_values("actor")


def test_repo_usage(events_path: Path) -> None:
    query = f"{PRELUDE}\nRepoUsage(datetime(2025-01-01), datetime(2025-01-13), 3, 1)"
    repos = run_kql(query, {"Events": events_path}).to_pandas().set_index("repo")
    # o/x: 21 olga fetches + 20 fred fetches -> 2 readers, 41 reads, no writes.
    x = repos.loc["o/x"]
    columns = ["actors", "repo_readers", "repo_writers", "reads", "writes", "active_read", "active_write"]
    assert x[columns].tolist() == [2, 2, 0, 41, 0, 1, 0]
    # o/n: nina cloned twice (Jan 4, 6) and pushed once -> reads 2 < 3 (not actively read), writes 1.
    n = repos.loc["o/n"]
    assert (n.repo_readers, n.repo_writers, n.reads, n.writes, n.active_read, n.active_write) == (1, 1, 2, 1, 0, 1)


def test_stored_and_inline_forms_come_from_the_same_files() -> None:
    functions = load_functions()
    assert set(functions) == {"AuditEvents", "ActorRepoUsage", "RepoUsage", "ActorStats", "ActorDayFeatures"}
    stored, inline = stored_functions(), inline_definitions()
    assert len(stored) == len(functions)
    for f in functions.values():
        assert f.body in inline and any(f.body in s for s in stored)
        assert f"let {f.name} = ({f.params}) {{" in inline
    order = list(functions)
    assert order.index("AuditEvents") < order.index("ActorStats") < order.index("ActorDayFeatures")


def test_inline_query_parses_with_duckdb_kql() -> None:
    query = features_query(START, END, HISTORY_START, new_repo_days=14, off_hours_z=3.0,
                           prelude="let GH_Audit_Logs_CL = GH_Audit_Logs_CL | where isnotempty(actor);", inline=True)
    assert query.count("let ActorDayFeatures = (") == 1
    assert parse_errors(query) == []
    assert parse_errors("GH_Audit_Logs_CL | wherex actor") != []


def test_features_query_rejects_bad_window() -> None:
    with pytest.raises(KqlTextError, match="history_start <= start < end"):
        features_query(END, START, HISTORY_START, new_repo_days=14, off_hours_z=3.0, prelude="", inline=False)
    with pytest.raises(KqlTextError, match="new_repo_days"):
        features_query(START, END, HISTORY_START, new_repo_days=0, off_hours_z=3.0, prelude="", inline=False)


def test_malformed_kql_file_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "Broken.kql").write_text("// Broken: no signature line\nGH_Audit_Logs_CL\n")
    with pytest.raises(KqlTextError, match=r"Broken\.kql:1: the header must hold exactly one"):
        load_functions(tmp_path)
    (tmp_path / "Broken.kql").write_text("// signature: Other(a:datetime)\nGH_Audit_Logs_CL\n")
    with pytest.raises(KqlTextError, match=r"Broken\.kql:1: signature names 'Other'"):
        load_functions(tmp_path)


def test_translation_error_is_clear(events_path: Path) -> None:
    with pytest.raises(KqlRunnerError, match="duckdb-kql"):
        run_kql(f"{PRELUDE}\nNoSuchFunction(1)", {"Events": events_path})


def test_missing_kql_lib_gives_setup_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_UEBA_KQL_LIB", str(tmp_path))
    with pytest.raises(KqlLibraryMissing, match="github-ueba setup-kql"):
        check_kql_lib()
    with pytest.raises(KqlLibraryMissing, match=str(tmp_path)):
        translate("print missing_lib = 1", [], {})


def test_missing_events_file_or_columns_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such Parquet file"):
        base_features(tmp_path / "nope.parquet", START, END, HISTORY_START, SETTINGS)
    partial = tmp_path / "partial.parquet"
    pq.write_table(pa.table({"timestamp": [0], "actor": ["a"]}), partial)
    with pytest.raises(InputError, match=r"partial\.parquet: missing event columns \['action'"):
        base_features(partial, START, END, HISTORY_START, SETTINGS)


def test_window_without_events_gives_an_empty_typed_table(events_path: Path) -> None:
    frame = base_features(events_path, dt.date(2024, 6, 3), dt.date(2024, 6, 10), dt.date(2024, 6, 1), SETTINGS)
    assert frame.empty and list(frame.columns) == list(BASE_FEATURE_COLUMNS)
    assert frame["events"].dtype == "int64" and pd.api.types.is_datetime64_any_dtype(frame["day"])


def test_every_cte_is_inlined_so_duckdb_can_spill(events_path: Path) -> None:
    from github_ueba.features.base import _CTE_DEFINITION, _table_columns, inline_ctes

    query = features_query(START, END, HISTORY_START, new_repo_days=3, off_hours_z=3.0, prelude="", inline=False)
    sql = translate(query, stored_functions(), {"GH_Audit_Logs_CL": _table_columns("GH_Audit_Logs_CL", events_path)}).sql
    rewritten = inline_ctes(sql)
    assert _CTE_DEFINITION.search(sql) is not None
    assert _CTE_DEFINITION.search(rewritten) is None
    assert rewritten.count("AS NOT MATERIALIZED (") == len(_CTE_DEFINITION.findall(sql))


def test_deploy_key_events_are_counted(tmp_path: Path) -> None:
    rows = [
        event("2025-01-06T09:00", "ci", "git.fetch", repo="o/x", programmatic_access_type="deploy_key"),
        event("2025-01-06T09:05", "ci", "git.fetch", repo="o/x", programmatic_access_type="Deploy key"),
        event("2025-01-06T09:10", "ci", "git.fetch", repo="o/x", programmatic_access_type="personal_access_token"),
    ]
    frame = base_features(write_events(rows, tmp_path / "e.parquet"), START, END, HISTORY_START, SETTINGS)
    assert frame.loc[0, "deploy_key_events"] == 2 and frame.loc[0, "events"] == 3
