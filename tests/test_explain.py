"""End to end on synthetic data: an obvious anomaly ranks first and its reasons say why, in words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_behaviour import RARE, make_base

from github_ueba.config import FeaturesConfig
from github_ueba.explain import WORDS, _fmt, reasons, top_contributions, topic_shares
from github_ueba.feature_sets import columns_for
from github_ueba.features.behaviour import COUNT_FEATURES, behaviour_features
from github_ueba.model import ActorDayDetector, training_rows


@pytest.fixture(scope="module")
def scored() -> tuple[ActorDayDetector, pd.DataFrame]:
    base = make_base(n_actors=40, n_days=60, seed=11, activity=0.8, n_bots=1, rare=0.0)
    # ordinary days: no security-relevant events, and a settled org where nobody reaches new repos
    novelty = ["new_repos", "new_repo_clones", "new_repo_pushes", "new_repo_downloads", "first_seen_repos",
               "first_seen_actions"]
    base[["access_granted", "repo_create", *novelty]] = 0
    last = base["day"].max()
    base = base.loc[~((base["actor"].isin(["user0", "user1"])) & (base["day"] == last))]
    quiet = {f: 0 for f in RARE | {"first_seen_ips", "first_seen_repos", "first_seen_actions"}}
    template = base.loc[base["actor"] == "user0"].iloc[[0]].assign(**quiet)
    user0 = base["actor"] == "user0"
    base.loc[user0, "git_clone"] = np.resize([1, 3, 5], int(user0.sum()))
    hot = template.assign(day=last, git_clone=200, events=230)
    odd = base.loc[base["actor"] == "user1"].iloc[[0]].assign(**quiet).assign(
        day=last, first_seen_countries=1, secret_scanning_disabled=1
    )
    base = pd.concat([base, hot, odd], ignore_index=True).drop(columns=["recent_first_seen_repos"])
    table = behaviour_features(base, FeaturesConfig(baseline_days=30, min_history_days=5))
    detect_start = last - pd.Timedelta(days=9)
    detector = ActorDayDetector(feature_columns=columns_for("full"), n_estimators=100).fit(
        training_rows(table, detect_start, 5, train_on_bots=False)
    )
    window = table.loc[table["day"] >= detect_start]
    return detector, window.assign(anomaly_score=detector.anomaly_score(window))


def test_obvious_anomaly_ranks_first_with_its_usual_value(scored):
    detector, window = scored
    ranked = window.sort_values("anomaly_score", ascending=False)
    last = window["day"].max()
    assert {(a, d) for a, d in zip(ranked["actor"].iloc[:2], ranked["day"].iloc[:2])} == {
        ("user0", last), ("user1", last)}, "the two planted actor-days must outrank every ordinary day"
    hot = ranked.loc[(ranked["actor"] == "user0") & (ranked["day"] == last)]
    top = hot.iloc[0]
    assert top["git_clone"] == 200
    text = reasons(detector, hot)[0]
    usual = f"{_fmt(np.array([top['git_clone_mean']]))[0]}±{_fmt(np.array([top['git_clone_std']]))[0]}"
    assert text.startswith(f"git clones 200 (usual {usual} over {top['baseline_span_days']} days)"), text


def test_security_events_are_named_in_words(scored):
    detector, window = scored
    row = window.loc[(window["actor"] == "user1") & (window["day"] == window["day"].max())]
    text = reasons(detector, row)[0]
    assert "new country (1)" in text and "secret scanning disabled ×1" in text, text


def test_reasons_are_words_not_column_names(scored):
    detector, window = scored
    top = window.sort_values("anomaly_score", ascending=False).head(15)
    texts = reasons(detector, top, top_n=3)
    assert len(texts) == 15 and all(texts)
    assert all("_" not in t and len(t.split("; ")) <= 3 for t in texts), texts
    assert reasons(detector, top.iloc[:0]) == []
    calm = top.head(1).assign(**{c: 0.0 for c in top.columns if c.endswith("_z")}, is_weekend=0)
    calm = calm.assign(**{f: 0 for f in COUNT_FEATURES if f not in ("events", "git_clone")})
    text = reasons(detector, calm)[0]
    assert text.startswith("unusual mix: ") and len(text.split("; ")) == 2, text


def test_counts_read_naturally(scored):
    detector, window = scored
    row = window.loc[(window["actor"] == "user0") & (window["day"] == window["day"].max())]
    row = row.assign(first_seen_repos=1, first_seen_repos_z=9.0, repo_download=4, repo_download_z=8.0,
                     repo_download_mean=0.0, repo_download_std=0.0)
    text = reasons(detector, row, top_n=10)[0]
    assert "1 repo first accessed" in text, text
    leaving = reasons(detector, row.assign(is_leaver=1, days_to_removal=3))[0]
    assert leaving.startswith("leaves the org 3 days later; git clones 200"), leaving
    assert f"repo zip downloads 4 (none in the previous {row['baseline_span_days'].iloc[0]} days)" in text, text


def test_numbers_are_short():
    values = np.array([200, 2.63, 0.04, 0.2, 0.0, 12.6, np.nan, 3.0, 1.05])
    assert list(_fmt(values)) == ["200", "2.6", "0.04", "0.2", "0", "13", "?", "3", "1.1"]


def test_every_count_feature_has_words():
    assert set(COUNT_FEATURES) <= set(WORDS)


def test_contributions_are_shares_and_favour_the_isolating_feature(scored):
    detector, window = scored
    hot = (window["actor"] == "user0") & (window["day"] == window["day"].max())
    top = pd.concat([window.loc[hot], window.loc[~hot].sort_values("anomaly_score", ascending=False).head(4)])
    shares = top_contributions(detector, top)
    assert list(shares.columns) == list(detector.feature_names_in_)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-9)
    topics = topic_shares(detector, top)
    np.testing.assert_allclose(topics.sum(axis=1), 1.0, rtol=1e-9)
    assert topics.iloc[0].idxmax() == "git_clone"
    first = shares.iloc[0]
    assert first[["events", "max_z", "volume_max_z"]].sum() > 0.5


def test_constant_feature_gets_no_credit():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"varies": rng.normal(size=400), "flat": np.ones(400)})
    detector = ActorDayDetector(feature_columns=["varies", "flat"], log_transform=False, n_estimators=20).fit(table)
    shares = top_contributions(detector, table.head(10))
    assert (shares["flat"] == 0).all() and np.allclose(shares["varies"], 1.0)
