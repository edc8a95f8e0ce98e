"""The traffic simulator's header share, routed the way the controller writes a header canary.

Aspects: the header share goes to the route above the managed one that matches on headers (the
controller's `<rollout>-canary` route, placed below any route already above the managed one); a
route matching a path only, like examples/ui's `/healthz` route, takes none of it; without a
header route the managed route carries every request.
"""

from __future__ import annotations

from typing import Any

from canary_sandbox.traffic import Split, split_from

DR = {"spec": {"subsets": [{"name": "stable", "labels": {"version": "v1"}},
                           {"name": "canary", "labels": {"version": "v2"}}]}}  # fmt: skip
HEALTH = {"name": "health", "match": [{"uri": {"exact": "/healthz"}}],
          "route": [{"destination": {"host": "ui", "subset": "stable"}}]}  # fmt: skip
HEADER = {"name": "ui-canary",
          "match": [{"headers": {"version": {"exact": "beta"}}},
                    {"headers": {"x-forwarded-for": {"regex": "^141\\.0\\.205\\.122(\\s*,.*)?$"}}}],
          "route": [{"destination": {"host": "ui", "subset": "canary"}}]}  # fmt: skip
PRIMARY = {"name": "primary", "route": [{"destination": {"host": "ui", "subset": "stable"}}]}


def vs(*routes: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"http": list(routes)}}


def test_the_header_route_below_a_health_route_takes_the_header_share() -> None:
    assert split_from(vs(HEALTH, HEADER, PRIMARY), DR, "primary") == Split(
        {"v1": 100.0}, header_version="v2"
    )


def test_a_path_only_route_above_the_managed_one_takes_no_header_share() -> None:
    assert split_from(vs(HEALTH, PRIMARY), DR, "primary") == Split({"v1": 100.0})


def test_a_header_route_that_also_matches_a_path_still_counts() -> None:
    merged = {**HEADER, "match": [{"uri": {"prefix": "/"}, "headers": {"v": {"exact": "b"}}}]}
    assert split_from(vs(HEALTH, merged, PRIMARY), DR, "primary").header_version == "v2"
