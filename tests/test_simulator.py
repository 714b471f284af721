"""The built-in simulated enterprise: deterministic, GitHub-shaped, believable, with every scenario labelled."""

from __future__ import annotations

import gzip
import re

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from github_ueba.config import ConfigError, SimulatorSource
from github_ueba.sources.simulator import (
    ATTACK_SCENARIOS,
    BENIGN_SCENARIOS,
    SIMULATED_ACTIONS,
    simulate,
    write_ndjson,
)

#: Real GitHub audit-log actions (GitHub docs: "Audit log events for your organization / enterprise").
REAL_ACTIONS = {
    "git.clone", "git.fetch", "git.push", "workflows.created_workflow_run", "api.request",
    "repo.download_zip", "repo.create", "repo.access", "repo.add_member", "repo.remove_member", "repo.destroy",
    "repo.transfer_start", "repo.transfer_outgoing", "repo.register_self_hosted_runner",
    "protected_branch.create", "protected_branch.destroy", "protected_branch.policy_override",
    "protected_branch.update_admin_enforced", "protected_branch.update_pull_request_reviews_enforcement_level",
    "protected_branch.update_required_status_checks_enforcement_level",
    "repository_ruleset.create", "repository_ruleset.update", "repository_ruleset.destroy",
    "repository_secret_scanning.disable", "repository_secret_scanning_push_protection.disable",
    "repository_vulnerability_alerts.disable", "hook.create", "public_key.create", "team.add_repository",
    "team.add_member", "integration_installation.create", "personal_access_token.request_created",
    "org.add_member", "org.invite_member", "org.remove_member", "org.update_member",
    "org.disable_two_factor_requirement", "org.disable_oauth_app_restrictions",
    "audit_log_streaming.update", "audit_log_streaming.destroy",
}

EXPECTED_SCHEMA = pa.schema([
    ("@timestamp", pa.int64()), ("created_at", pa.int64()), ("_document_id", pa.string()),
    ("action", pa.string()), ("actor", pa.string()), ("actor_id", pa.int64()), ("actor_ip", pa.string()),
    ("actor_location", pa.struct([("country_code", pa.string())])), ("org", pa.string()), ("repo", pa.string()),
    ("user", pa.string()), ("operation_type", pa.string()), ("transport_protocol_name", pa.string()),
    ("programmatic_access_type", pa.string()), ("user_agent", pa.string()), ("business", pa.string()),
    ("visibility", pa.string()), ("permission", pa.string()),
])

SMALL = dict(n_developers=30, n_admins=4, n_bots=3, n_service_accounts=2, n_teams=5, repos_per_team=6,
             days=60, end="2026-11-30", hires=2, leavers=2, attacks_per_scenario=2, benign_per_scenario=2,
             attack_days=20, seed=7)

#: Actions each scenario must show on its labelled actor-days (any one of each inner set).
SIGNATURES = {
    "mass_clone_before_leaving": [{"git.clone"}],
    "stolen_token": [{"git.clone"}, {"repo.download_zip"}],
    "protection_tampering": [{"protected_branch.destroy"}, {"repository_ruleset.destroy"},
                             {"repository_secret_scanning.disable"},
                             {"repository_secret_scanning_push_protection.disable"}],
    "persistence": [{"public_key.create"}, {"hook.create"}, {"integration_installation.create"},
                    {"repo.register_self_hosted_runner"}],
    "admin_abuse": [{"org.disable_two_factor_requirement"}, {"org.disable_oauth_app_restrictions"},
                    {"org.update_member"}, {"audit_log_streaming.destroy", "audit_log_streaming.update"},
                    {"repo.access"}],
    "slow_access_widening": [{"git.clone"}],
    "repo_exfil_transfer": [{"repo.transfer_outgoing", "repo.destroy"}],
    "benign_team_migration": [{"git.clone"}],
    "benign_admin_review": [{"org.update_member", "repo.add_member"}],
    "benign_new_laptop": [{"public_key.create"}, {"git.clone"}],
}


@pytest.fixture(scope="module")
def sim():
    return simulate(SimulatorSource(**SMALL))


@pytest.fixture(scope="module")
def events(sim) -> pd.DataFrame:
    frame = sim.raw.to_pandas()
    frame["country"] = frame["actor_location"].str["country_code"]
    frame["time"] = pd.to_datetime(frame["@timestamp"], unit="ms")
    frame["day"] = frame["time"].dt.floor("D")
    return frame


def test_same_seed_gives_the_same_enterprise_and_another_seed_another(sim):
    again = simulate(SimulatorSource(**SMALL))
    assert again.raw.equals(sim.raw)
    pd.testing.assert_frame_equal(again.labels, sim.labels)
    other = simulate(SimulatorSource(**{**SMALL, "seed": 8}))
    assert not other.raw.equals(sim.raw)
    assert other.raw.column("_document_id")[0] != sim.raw.column("_document_id")[0]


def test_schema_is_githubs_field_names_and_types(sim):
    assert sim.raw.schema == EXPECTED_SCHEMA
    assert list(sim.labels.columns) == ["actor", "day", "scenario"]
    assert sim.labels["day"].dtype == "datetime64[ns]"
    assert (sim.labels["day"] == sim.labels["day"].dt.normalize()).all()


def test_field_values_follow_githubs_conventions(events):
    assert (events["created_at"] == events["@timestamp"]).all()
    assert events["@timestamp"].is_monotonic_increasing
    org_level = events["action"].str.startswith(("org.", "team.add_member", "integration_installation",
                                                 "personal_access_token", "audit_log_streaming"))
    assert events.loc[org_level, "repo"].isna().all()
    in_repo = events.loc[~org_level]
    assert in_repo["repo"].dropna().str.fullmatch(r"acme-corp/[a-z0-9-]+").all()
    assert set(in_repo.loc[in_repo["repo"].isna(), "action"]) <= {"public_key.create"}  # a user's own SSH key
    assert events.loc[events["action"].str.startswith("audit_log_streaming"), "org"].isna().all()
    assert (events.loc[~events["action"].str.startswith("audit_log_streaming"), "org"] == "acme-corp").all()
    git = events["action"].str.startswith("git.")
    assert events.loc[git, "transport_protocol_name"].isin(["http", "ssh"]).all()
    assert events.loc[~git, "transport_protocol_name"].isna().all()
    assert events.loc[events["transport_protocol_name"] == "ssh", "programmatic_access_type"].isna().all()
    with_visibility = events["visibility"].notna()
    assert set(events.loc[with_visibility, "action"]) <= {"repo.access", "repo.create"}
    assert set(events.loc[with_visibility, "visibility"]) <= {"public", "private", "internal"}
    with_permission = events["permission"].notna()
    assert set(events.loc[with_permission, "action"]) <= {"org.update_member", "repo.add_member", "org.add_member"}
    assert set(events["operation_type"]) <= {"create", "access", "modify", "remove", "transfer"}
    assert (events["business"] == "acme").all()
    assert events["actor_ip"].str.fullmatch(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}").all()
    assert events["country"].str.fullmatch(r"[A-Z]{2}").all()
    assert (events.groupby("actor")["actor_id"].nunique() == 1).all()
    assert (events.groupby("actor_id")["actor"].nunique() == 1).all()


def test_document_ids_are_unique_and_github_like(events):
    ids = events["_document_id"]
    assert ids.is_unique
    assert ids.str.fullmatch(r"[A-Za-z0-9_-]{22}").all()


def test_timestamps_stay_inside_the_window(events):
    first = pd.Timestamp(SMALL["end"]) - pd.Timedelta(days=SMALL["days"] - 1)
    assert events["time"].min() >= first
    assert events["time"].max() < pd.Timestamp(SMALL["end"]) + pd.Timedelta(days=1)
    assert events["day"].nunique() == SMALL["days"]


def test_every_action_is_a_real_github_action(events):
    assert SIMULATED_ACTIONS <= REAL_ACTIONS
    assert set(events["action"]) <= REAL_ACTIONS


def test_every_scenario_kind_is_labelled(sim):
    assert set(sim.labels["scenario"]) == set(ATTACK_SCENARIOS) | set(BENIGN_SCENARIOS)
    assert all(kind.startswith("benign_") for kind in BENIGN_SCENARIOS)
    assert not any(kind.startswith("benign_") for kind in ATTACK_SCENARIOS)
    assert not sim.labels.duplicated(["actor", "day"]).any()


def test_every_label_has_events_of_its_actor_that_day(sim, events):
    active = events[["actor", "day"]].drop_duplicates()
    joined = sim.labels.merge(active, on=["actor", "day"], how="left", indicator=True)
    assert (joined["_merge"] == "both").all(), joined[joined["_merge"] != "both"]


def test_attacks_hit_distinct_actors_in_the_last_attack_days(sim):
    attacks = sim.labels[~sim.labels["scenario"].str.startswith("benign_")]
    per_kind = attacks.groupby("scenario")["actor"].nunique()
    assert (per_kind == SMALL["attacks_per_scenario"]).all()
    assert per_kind.sum() == attacks["actor"].nunique()
    earliest = pd.Timestamp(SMALL["end"]) - pd.Timedelta(days=SMALL["attack_days"])  # one day early: UTC vs local
    assert attacks["day"].min() >= earliest


@pytest.mark.parametrize("scenario", sorted(SIGNATURES))
def test_each_scenario_shows_its_signature_actions(sim, events, scenario):
    rows = sim.labels[sim.labels["scenario"] == scenario]
    seen = events.merge(rows, on=["actor", "day"])
    for instance_actor, instance in seen.groupby("actor"):
        actions = set(instance["action"])
        for needed in SIGNATURES[scenario]:
            assert actions & needed, f"{scenario} by {instance_actor}: none of {needed} in {sorted(actions)}"


def test_stolen_token_comes_from_a_new_country_at_night_with_a_token(sim, events):
    home = sim.actors.set_index("actor")
    rows = sim.labels[sim.labels["scenario"] == "stolen_token"]
    seen = events.merge(rows, on=["actor", "day"])
    foreign = seen[seen["country"] != seen["actor"].map(home["country"])]
    assert foreign["actor"].nunique() == rows["actor"].nunique()
    assert (foreign["programmatic_access_type"] == "personal_access_token").all()
    utc_hour = foreign["time"].dt.hour + foreign["time"].dt.minute / 60
    local_hour = (utc_hour + foreign["actor"].map(home["utc_offset"])) % 24
    assert local_hour.between(1.0, 6.0).all()
    victims_elsewhere = events[events["actor"].isin(rows["actor"]) & ~events["day"].isin(rows["day"])]
    assert not set(foreign["actor_ip"]) & set(victims_elsewhere["actor_ip"])


def test_new_laptop_is_a_new_ip_in_the_usual_country(sim, events):
    home = sim.actors.set_index("actor")["country"]
    rows = sim.labels[sim.labels["scenario"] == "benign_new_laptop"]
    seen = events.merge(rows, on=["actor", "day"])
    new_key = seen[seen["action"] == "public_key.create"]
    assert len(new_key) == len(rows)
    laptop = seen[seen["actor_ip"].isin(new_key["actor_ip"])]
    assert (laptop["country"] == laptop["actor"].map(home)).all()
    assert (laptop["action"] == "git.clone").sum() >= SMALL["repos_per_team"] * len(rows)
    before = events[events["time"] < new_key["time"].min()]
    assert not set(new_key["actor_ip"]) & set(before["actor_ip"])


def test_admin_abuse_makes_a_repo_public_and_an_owner(sim, events):
    rows = sim.labels[sim.labels["scenario"] == "admin_abuse"]
    seen = events.merge(rows, on=["actor", "day"])
    assert (seen.loc[seen["action"] == "repo.access", "visibility"] == "public").all()
    assert (seen.loc[seen["action"] == "org.update_member", "permission"] == "admin").any()
    assert set(rows["actor"]) <= set(sim.actors.loc[sim.actors["role"] == "admin", "actor"])


def test_leavers_and_mass_cloners_are_removed_after_their_last_event(sim, events):
    removed = events[events["action"] == "org.remove_member"].set_index("user")["time"]
    left = sim.actors.dropna(subset=["left"])
    cloners = set(sim.labels.loc[sim.labels["scenario"] == "mass_clone_before_leaving", "actor"])
    assert cloners <= set(left["actor"])
    assert len(left) == SMALL["leavers"] + SMALL["attacks_per_scenario"]
    own_last = events.groupby("actor")["time"].max()
    for actor in left["actor"]:
        assert actor in removed.index, f"no org.remove_member for {actor}"
        assert removed[actor] > own_last[actor]


def test_hires_are_added_before_their_first_event(sim, events):
    hires = sim.actors.dropna(subset=["joined"])
    assert len(hires) == SMALL["hires"]
    added = events[events["action"] == "org.add_member"].set_index("user")["time"]
    own_first = events.groupby("actor")["time"].min()
    for actor in hires["actor"]:
        assert added[actor] < own_first[actor]


def test_bots_and_service_accounts_look_like_machines(sim, events):
    roles = sim.actors.set_index("actor")["role"]
    bots = roles.index[roles == "bot"]
    services = roles.index[roles == "service_account"]
    assert len(bots) == SMALL["n_bots"] and all(name.endswith("[bot]") for name in bots)
    assert len(services) == SMALL["n_service_accounts"] and all(name.startswith("svc-") for name in services)
    assert not any("[bot]" in name for name in roles.index[roles != "bot"])
    machine = events[events["actor"].isin(list(bots) + list(services))]
    assert machine["programmatic_access_type"].notna().all()
    ci = events[events["actor"] == bots[0]]
    assert ci["time"].dt.hour.nunique() == 24 and ci["day"].nunique() == SMALL["days"]


def test_developers_keep_local_office_hours_and_weekends(sim, events):
    people = sim.actors.set_index("actor")
    devs = events[events["actor"].map(people["role"]) == "developer"]
    local = devs["time"] + pd.to_timedelta(devs["actor"].map(people["utc_offset"]), unit="h")
    assert local.dt.hour.between(7, 20).mean() > 0.9
    assert (local.dt.weekday >= 5).mean() < 0.08
    per_day = devs.groupby(["actor", "day"]).size()
    assert 8 < per_day.mean() < 60
    assert devs["actor_ip"].groupby(devs["actor"]).nunique().median() <= 3


def test_write_ndjson_round_trips_through_duckdb(sim, tmp_path):
    plain = sim.write_ndjson(tmp_path / "audit.ndjson")
    packed = write_ndjson(sim.raw, tmp_path / "audit.ndjson.gz")
    with_nulls = write_ndjson(sim.raw, tmp_path / "nulls.ndjson", omit_nulls=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.ndjson", "audit.ndjson.gz", "nulls.ndjson"]
    expected = sim.raw.select(["@timestamp", "_document_id", "action", "actor", "repo", "user"]).to_pandas()
    for path in (plain, packed, with_nulls):
        back = duckdb.sql(
            f"SELECT \"@timestamp\", _document_id, action, actor, repo, \"user\", actor_location.country_code AS cc "
            f"FROM read_json('{path}', format='newline_delimited', sample_size=-1)"
        ).df()
        assert len(back) == sim.raw.num_rows
        pd.testing.assert_frame_equal(back[expected.columns].reset_index(drop=True), expected, check_dtype=False)
    with gzip.open(packed, "rt") as lines:
        first = lines.readline()
    assert first.startswith('{"@timestamp":') and '"actor_location":{"country_code":' in first
    text = plain.read_text()
    assert '":null' not in text and '"visibility":"public"' in text
    assert '":null' in with_nulls.read_text()


@pytest.mark.parametrize(
    "override, key",
    [({"n_developers": 10}, "source.n_developers"), ({"end": "30/11/2026"}, "source.end"),
     ({"attack_days": 5}, "source.attack_days"), ({"n_admins": 1}, "source.n_admins")],
)
def test_impossible_settings_fail_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        simulate(SimulatorSource(**{**SMALL, **override}))


def test_volume_grows_with_the_population():
    small = simulate(SimulatorSource(**{**SMALL, "attacks_per_scenario": 1, "benign_per_scenario": 1}))
    large = simulate(SimulatorSource(**{**SMALL, "n_developers": 90, "attacks_per_scenario": 1,
                                        "benign_per_scenario": 1}))
    developer_events = [
        int(np.isin(s.raw.column("actor").to_numpy(zero_copy_only=False),
                    s.actors.loc[s.actors["role"] == "developer", "actor"].to_numpy()).sum())
        for s in (small, large)
    ]
    assert 2.0 < developer_events[1] / developer_events[0] < 4.5
