"""kql/github_audit_actions.txt holds real GitHub audit-log action names, and the kql/ functions use
only those (the published KQL counted a misspelt action that never matches)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

KQL_DIR = Path(__file__).resolve().parents[1] / "kql"
ACTIONS_FILE = KQL_DIR / "github_audit_actions.txt"
SAMPLES = Path("/work/shared/samples/github-audit")

#: Actions that only exist in hand-written test fixtures (samples/SOURCES.md) or in the paper's KQL.
FAKE_ACTIONS = [
    "invite_member",
    "org.invite_user",
    "not_repository_vulnerability_alert.dismiss",
    "repo.disable",
    "repo.enable",
    "repository_secret_scanning_protection.disable",
    "repository_branch_protection_ evaluation.disable",
]

#: Real names the features rely on (GitHub's audit-log event reference).
REQUIRED_ACTIONS = [
    "git.clone",
    "git.fetch",
    "git.push",
    "repo.download_zip",
    "repo.create",
    "repo.access",
    "org.remove_member",
    "repo.remove_member",
    "repository_branch_protection_evaluation.disable",
    "repository_secret_scanning.disable",
    "repository_secret_scanning_push_protection.disable",
    "org.disable_two_factor_requirement",
    "org.disable_oauth_app_restrictions",
    "audit_log_streaming.destroy",
    "protected_branch.destroy",
    "dependabot_alerts.disable",
    "public_key.create",
]


def known_actions() -> list[str]:
    """The lines of the action list."""
    return ACTIONS_FILE.read_text(encoding="utf-8").splitlines()


def quoted_strings(kql_text: str) -> list[str]:
    """Every double- or single-quoted string literal outside `//` comments."""
    code = "\n".join(line.split("//", 1)[0] for line in kql_text.splitlines())
    return [a or b for a, b in re.findall(r'"([^"]*)"|\'([^\']*)\'', code)]


def test_list_is_sorted_unique_and_well_formed() -> None:
    actions = known_actions()
    assert len(actions) > 1000
    assert actions == sorted(set(actions))
    bad = [a for a in actions if not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", a)]
    assert bad == []


def test_every_action_in_kql_is_known() -> None:
    known = set(known_actions())
    used = {s for path in KQL_DIR.glob("*.kql") for s in quoted_strings(path.read_text(encoding="utf-8")) if "." in s}
    assert len(used) > 50
    assert sorted(used - known) == []


def test_required_actions_present_and_fakes_absent() -> None:
    known = set(known_actions())
    assert [a for a in REQUIRED_ACTIONS if a not in known] == []
    assert [a for a in FAKE_ACTIONS if a in known] == []


def test_misspelt_action_would_be_caught() -> None:
    text = 'T | where action in ("git.clone", "repository_branch_protection_ evaluation.disable")'
    assert set(s for s in quoted_strings(text) if "." in s) - set(known_actions()) == {
        "repository_branch_protection_ evaluation.disable"
    }


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared samples not available")
def test_sample_actions_are_known_except_fixture_fakes() -> None:
    seen = {
        json.loads(line).get("action")
        for path in SAMPLES.glob("*.ndjson")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    assert sorted(seen - set(known_actions()) - set(FAKE_ACTIONS)) == []
