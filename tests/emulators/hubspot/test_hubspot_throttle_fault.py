"""The ``throttle_rate`` fault: a seeded fraction of API requests answered with HubSpot's 429."""

from __future__ import annotations

from typing import Any


def test_throttle_rate_answers_429_with_hubspots_body_and_retry_after(fast: Any) -> None:
    deal = fast("POST", "/crm/v3/objects/deals", {"properties": {"dealname": "Throttled"}}).json()
    fast.control("DELETE", "calls")
    state = fast.control("POST", "faults", {"throttle_rate": 0.5, "retry_after_s": 2, "seed": 7})
    assert (state["throttle_rate"], state["retry_after_s"], state["seed"]) == (0.5, 2, 7)

    answers = []
    for n in range(40):
        resp = fast("PATCH", f"/crm/v3/objects/deals/{deal['id']}", {"properties": {"amount": str(n)}})
        answers.append(resp)
    throttled = [r for r in answers if r.status_code == 429]
    assert throttled
    assert len(throttled) < 40
    assert {r.status_code for r in answers} == {200, 429}
    body = throttled[0].json()
    assert body["status"] == "error"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["correlationId"]
    assert throttled[0].headers["Retry-After"] == "2"
    calls = fast.control("GET", "calls")
    assert calls["throttled"] == len(throttled)
    assert calls["by_endpoint"]["PATCH /crm/v3/objects/deals/{id}"] == 40
    # Nothing is applied: the deal holds the value of the last request that was answered 200.
    fast.control("POST", "faults", {"throttle_rate": 0})
    last_ok = max(n for n, r in enumerate(answers) if r.status_code == 200)
    got = fast("GET", f"/crm/v3/objects/deals/{deal['id']}?properties=amount").json()
    assert got["properties"]["amount"] == str(last_ok)

    # Deterministic for a seed, and its own sequence: the 5xx draws are unchanged by throttling.
    fast.control("POST", "faults", {"throttle_rate": 0.5, "retry_after_s": 2, "seed": 7})
    again = [fast("GET", "/crm/v3/objects/deals?limit=1").status_code for _ in range(40)]
    assert again == [r.status_code for r in answers]
    fast.control("POST", "faults", {"throttle_rate": 0.5, "error_rate": 0.3, "seed": 7})
    both = [fast("GET", "/crm/v3/objects/deals?limit=1").status_code for _ in range(40)]
    fast.control("POST", "faults", {"throttle_rate": 0, "error_rate": 0.3, "seed": 7})
    errors_only = [fast("GET", "/crm/v3/objects/deals?limit=1").status_code for _ in range(40)]
    assert {429, 200} <= set(both)
    assert [s for s in both if s != 429] == errors_only[: len([s for s in both if s != 429])]
    fast.control("POST", "faults", {"throttle_rate": 0, "error_rate": 0})
    assert {fast("GET", "/crm/v3/objects/deals?limit=1").status_code for _ in range(10)} == {200}
    fast.control("POST", "reset")
    assert fast.control("GET", "faults")["throttle_rate"] == 0
