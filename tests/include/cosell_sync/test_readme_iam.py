"""The README's Partner Central IAM policy grants every operation the product calls, and nothing unknown."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _operations_called() -> set[str]:
    """Partner Central operations named in the product's code, as a call (snake case) or a counter key."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("partnercentral-selling")
    snake = {re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower(): op for op in model.operation_names}
    code = "\n".join(
        p.read_text() for folder in ("include/cosell_sync", "plugins") for p in (ROOT / folder).rglob("*.py")
    )
    called = {op for name, op in snake.items() if re.search(rf"[\"']{name}[\"']|\.{name}\(", code)}
    counted = {op for op in model.operation_names if re.search(rf"calls\[[\"']{op}[\"']\]", code)}
    return called | counted


def _granted() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    return set(re.findall(r"\"partnercentral:([A-Za-z]+)\"", readme))


def test_the_readme_grants_every_partner_central_operation_the_code_calls() -> None:
    called = _operations_called()
    # The scan finds the real calls (a broken scan would pass the check below vacuously).
    assert "UpdateOpportunity" in called
    assert "ListOpportunities" in called
    missing = called - _granted()
    assert not missing, f"README's Partner Central policy lacks: {sorted(missing)}"


def test_the_readme_grants_only_operations_the_model_has() -> None:
    import botocore.session

    ops = set(botocore.session.get_session().get_service_model("partnercentral-selling").operation_names)
    assert _granted(), "the README has no Partner Central policy"
    assert _granted() <= ops
