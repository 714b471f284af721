"""Readable reasons for flagged actor-days: unusual counts against the actor's own past, discrete
security events, and which features isolated the row in the forest (path attribution).

Path attribution: in every isolation tree, each split on a row's path sends the row to a child that
holds fewer of the training sub-sample; the split's feature is credited `log2(n_parent / n_child)`
(bits of isolation: a split that cuts 256 samples down to 1 earns 8, one that cuts off a few
earns almost 0). Summed over the trees and normalized per row, these credits say which features
isolated the row early. Reasons name discrete security events and an imminent departure first,
then the unusual features ordered by that share (ties by z-score).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from github_ueba.features.behaviour import (
    COUNT_FEATURES,
    Z_GROUPS,
    group_z_column,
    mean_column,
    std_column,
    z_column,
)
from github_ueba.model import ActorDayDetector

#: Column -> the words an analyst reads. A `{n}` marks a discrete event, phrased around its count
#: (`{s}` is a plural "s"); other counts read "<words> <value> (usual <mean>±<std> over <n> days)".
WORDS: dict[str, str] = {
    "events": "events",
    "git_clone": "git clones",
    "git_fetch": "git fetches",
    "git_push": "git pushes",
    "repo_download": "repo zip downloads",
    "unique_repos": "repos touched",
    "unique_ips": "IP addresses",
    "unique_countries": "countries",
    "unique_actions": "kinds of action",
    "new_repos": "repos new to the actor",
    "new_repo_clones": "clones of repos new to the actor",
    "new_repo_pushes": "pushes to repos new to the actor",
    "new_repo_downloads": "zip downloads of repos new to the actor",
    "off_hours_events": "events outside usual hours",
    "first_seen_ips": "new IP address ({n})",
    "first_seen_countries": "new country ({n})",
    "first_seen_repos": "{n} repo{s} first accessed",
    "recent_first_seen_repos": "repos first accessed over the recent days",
    "first_seen_actions": "{n} action{s} never done before",
    "protection_changes": "branch protection weakened ×{n}",
    "secret_scanning_disabled": "secret scanning disabled ×{n}",
    "security_alerts_disabled": "security alerts disabled ×{n}",
    "org_security_weakened": "org security setting weakened ×{n}",
    "access_granted": "access granted ×{n}",
    "persistence": "keys, tokens, hooks or apps added ×{n}",
    "repo_exposure": "repo made public, transferred or deleted ×{n}",
    "repo_create": "repos created ×{n}",
    "members_removed": "members removed ×{n}",
    "is_weekend": "weekend activity",
    "is_leaver": "leaves the org",
    "history_days": "little history: {n} active day{s}",
    "days_since_last_active": "back after {n} day{s} away",
    "novel_features": "{n} kind{s} of activity new for this actor",
}

#: Security-setting events named whenever they happen, before anything else.
ALWAYS_NAMED: tuple[str, ...] = (
    "protection_changes",
    "secret_scanning_disabled",
    "security_alerts_disabled",
    "org_security_weakened",
    "repo_exposure",
    "persistence",
    "first_seen_countries",
)

#: A count is unusual for the actor from this z-score on.
Z_UNUSUAL = 2.0
#: Context facts (history, absence, novelty, weekend) are named only with this much attribution share.
CONTEXT_SHARE = 0.05


def _topic(column: str) -> str:
    """The base feature a model column is about (`git_clone_z` and `paper_z_git_clone` -> `git_clone`)."""
    if column.startswith("paper_z_"):
        return column[len("paper_z_"):]
    for suffix in ("_z", "_mean", "_std"):
        if column.endswith(suffix) and column[: -len(suffix)] in COUNT_FEATURES:
            return column[: -len(suffix)]
    return column


def _node_credit(tree: object, features: np.ndarray, n_columns: int) -> sp.csr_matrix:
    """Sparse (nodes × forest columns): the bits of isolation each node's parent split earns its feature."""
    structure = tree.tree_  # type: ignore[attr-defined]
    left, right = structure.children_left, structure.children_right
    parent = np.full(structure.node_count, -1, dtype=np.int64)
    internal = np.flatnonzero(left >= 0)
    parent[left[internal]] = internal
    parent[right[internal]] = internal
    child = np.flatnonzero(parent >= 0)
    counts = structure.weighted_n_node_samples
    bits = np.log2(counts[parent[child]] / np.maximum(counts[child], 1e-12))
    column = np.asarray(features)[structure.feature[parent[child]]]
    return sp.csr_matrix((bits, (child, column)), shape=(structure.node_count, n_columns))


def top_contributions(detector: ActorDayDetector, rows: pd.DataFrame) -> pd.DataFrame:
    """Per row, each model feature's share of the isolation credit over the forest (rows sum to 1)."""
    matrix = detector.transform_for_forest(rows)
    forest = detector.pipeline_[-1]
    n_columns = matrix.shape[1]
    credit = np.zeros((len(rows), n_columns))
    for tree, features in zip(forest.estimators_, forest.estimators_features_):
        paths = tree.decision_path(matrix[:, features])
        credit += np.asarray((paths @ _node_credit(tree, features, n_columns)).todense())
    total = credit.sum(axis=1, keepdims=True)
    shares = np.divide(credit, total, out=np.zeros_like(credit), where=total > 0)
    frame = pd.DataFrame(shares, index=rows.index, columns=list(detector.forest_feature_names_))
    return frame[list(detector.feature_names_in_)]


def _fmt(values: np.ndarray) -> np.ndarray:
    """Short numbers: whole numbers as such, >= 10 rounded, 1..10 one decimal, below 1 two decimals."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.nan_to_num(values, nan=0.0)
    size = np.abs(finite)
    rounded = np.round(finite).astype(np.int64).astype(str)
    decimals = np.where(size < 1, np.char.mod("%.2f", finite), np.char.mod("%.1f", finite))
    decimals = np.char.rstrip(np.char.rstrip(decimals, "0"), ".")
    whole = (size >= 10) | (np.round(finite, 2) == np.round(finite))
    return np.where(np.isnan(values), "?", np.where(whole, rounded, decimals))


def _phrase(template: str, counts: np.ndarray) -> pd.Series:
    """`template` with `{n}` replaced by each count and `{s}` by a plural "s" unless the count is 1."""
    counts = np.asarray(counts, dtype=np.float64)
    singular, plural = (template.replace("{s}", ending).partition("{n}") for ending in ("", "s"))
    numbers = _fmt(counts)
    one = np.char.add(np.char.add(singular[0], numbers), singular[2])
    many = np.char.add(np.char.add(plural[0], numbers), plural[2])
    return pd.Series(np.where(counts == 1, one, many))


def _join(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise string concatenation of arrays and constants."""
    out = np.asarray(parts[0])
    for part in parts[1:]:
        out = np.char.add(out, part)
    return out


def _usual(mean: np.ndarray, std: np.ndarray, span: np.ndarray) -> np.ndarray:
    """" (usual 3±2 over 58 days)", " (none in the previous 58 days)" or " (no history yet)" per row."""
    days = np.where(span == 1, " day)", " days)")
    spread = np.where(np.isnan(std), "", np.char.add("±", _fmt(std)))
    usual = _join(" (usual ", _fmt(mean), spread, " over ", _fmt(span), days)
    none = _join(" (none in the previous ", _fmt(span), days)
    return np.where(np.isnan(mean), " (no history yet)", np.where(mean == 0, none, usual))


def _count_candidates(rows: pd.DataFrame, shares: pd.DataFrame) -> list[pd.DataFrame]:
    """Every count of every row as a phrase; `eligible` marks unusual counts (z >= Z_UNUSUAL) and
    security events (ALWAYS_NAMED), which get tier 0."""
    parts = []
    position = np.arange(len(rows))
    span = rows["baseline_span_days"].to_numpy() if "baseline_span_days" in rows else np.zeros(len(rows))
    for feature in COUNT_FEATURES:
        if feature not in rows or z_column(feature) not in rows:
            continue
        value = rows[feature].to_numpy(dtype=np.float64)
        z = rows[z_column(feature)].to_numpy(dtype=np.float64)
        named = (value > 0) & (feature in ALWAYS_NAMED)
        eligible = (value > 0) & ((z >= Z_UNUSUAL) | named)
        template = WORDS.get(feature, feature)
        if "{n}" in template:
            text = _phrase(template, value)
        else:
            usual = _usual(
                rows[mean_column(feature)].to_numpy(dtype=np.float64),
                rows[std_column(feature)].to_numpy(dtype=np.float64),
                span,
            )
            text = pd.Series(np.char.add(np.char.add(f"{template} ", _fmt(value)), usual))
        parts.append(
            pd.DataFrame(
                {
                    "row": position,
                    "text": text.to_numpy(),
                    "tier": np.where(named, 0, 1),
                    "share": shares[feature].to_numpy(),
                    "z": z,
                    "eligible": eligible,
                }
            )
        )
    return parts


def _context_candidates(rows: pd.DataFrame, shares: pd.DataFrame) -> list[pd.DataFrame]:
    """Leaving (always named, first), thin history, long absence, new kinds of activity, weekend,
    where they apply; the others are `eligible` with at least CONTEXT_SHARE of the credit."""
    position = np.arange(len(rows))
    parts = []
    if "is_leaver" in rows and "days_to_removal" in rows:
        days = rows["days_to_removal"].to_numpy(dtype=np.float64)
        leaving = (rows["is_leaver"].to_numpy() > 0) & (days >= 0)
        later = _join("leaves the org ", _fmt(days), np.where(days == 1, " day later", " days later"))
        text = np.where(days == 0, "removed from the org that day", later)
        share = shares["is_leaver"].to_numpy() if "is_leaver" in shares else np.zeros(len(rows))
        frame = pd.DataFrame({"row": position, "text": text, "tier": 0, "share": share, "z": 0.0, "eligible": True})
        parts.append(frame.loc[leaving])
    facts: list[tuple[str, np.ndarray, pd.Series]] = []
    if "history_days" in rows and "has_baseline" in rows:
        history = rows["history_days"].to_numpy(dtype=np.float64)
        thin = ~rows["has_baseline"].to_numpy(dtype=bool)
        facts.append(("history_days", thin, _phrase(WORDS["history_days"], history)))
    for column, floor in (("days_since_last_active", 14), ("novel_features", 2)):
        if column in rows:
            value = rows[column].to_numpy(dtype=np.float64)
            facts.append((column, value >= floor, _phrase(WORDS[column], value)))
    if "is_weekend" in rows:
        weekend = rows["is_weekend"].to_numpy() > 0
        facts.append(("is_weekend", weekend, pd.Series(np.full(len(rows), WORDS["is_weekend"]))))
    for column, applies, text in facts:
        share = shares[column].to_numpy() if column in shares else np.zeros(len(rows))
        frame = pd.DataFrame({"row": position, "text": text.to_numpy(), "tier": 1, "share": share, "z": 0.0})
        parts.append(frame.assign(eligible=share >= CONTEXT_SHARE).loc[applies])
    return parts


def _composite_members(column: str) -> tuple[str, ...] | None:
    """The count features a composite z column (`max_z`, `<group>_max_z`) takes its maximum over."""
    if column == "max_z":
        return COUNT_FEATURES
    for group, members in Z_GROUPS.items():
        if column == group_z_column(group):
            return members
    return None


def topic_shares(detector: ActorDayDetector, rows: pd.DataFrame) -> pd.DataFrame:
    """Attribution shares per base feature: a count, its z-scores, and the composite maxima it won.

    A composite column's share goes, row by row, to the count feature whose z-score is its value.
    Rows are positions (0..n-1); columns are base features and context columns.
    """
    shares = top_contributions(detector, rows)
    topics = list(dict.fromkeys([*COUNT_FEATURES, *WORDS, *(_topic(c) for c in shares.columns)]))
    index = {topic: k for k, topic in enumerate(topics)}
    out = np.zeros((len(rows), len(topics)))
    positions = np.arange(len(rows))
    for column in shares.columns:
        share = shares[column].to_numpy()
        members = _composite_members(column)
        present = [m for m in members or () if z_column(m) in rows]
        if not present:
            out[:, index[_topic(column)]] += share
            continue
        z = rows[[z_column(m) for m in present]].to_numpy(dtype=np.float64)
        winner = np.array([index[m] for m in present])[np.argmax(np.nan_to_num(z, nan=-np.inf), axis=1)]
        np.add.at(out, (positions, winner), share)
    return pd.DataFrame(out, columns=topics)


def reasons(detector: ActorDayDetector, rows: pd.DataFrame, top_n: int = 4) -> list[str]:
    """One readable line per row, e.g. `git clones 212 (usual 3±2 over 58 days); new country (1)`.

    Security events first, then unusual counts and context by attribution share (ties by z). A row
    with nothing unusual to name reads "unusual mix: " and its two most credited facts.
    """
    if rows.empty:
        return []
    shares = topic_shares(detector, rows)
    candidates = pd.concat([*_count_candidates(rows, shares), *_context_candidates(rows, shares)], ignore_index=True)
    ordered = candidates.sort_values(["row", "tier", "share", "z"], ascending=[True, True, False, False], kind="stable")
    named = ordered.loc[ordered["eligible"]].groupby("row").head(top_n)
    mixed = ordered.loc[~ordered["row"].isin(named["row"])].sort_values(
        ["row", "share", "z"], ascending=[True, False, False], kind="stable"
    )
    text = named.groupby("row")["text"].agg("; ".join)
    mixed_text = "unusual mix: " + mixed.groupby("row").head(2).groupby("row")["text"].agg("; ".join)
    return pd.concat([text, mixed_text]).reindex(np.arange(len(rows)), fill_value="").tolist()
