"""The `ui` service of the reference Istio talk, walked through a whole release and a rollback.

Each step feeds the previous step's objects back in, as the controller does; the expected
VirtualService routes are the ones the talk shows (mirror, header canary, 90/10 split).
"""

from __future__ import annotations

from typing import Any

from mesh_helpers import (
    CANARY,
    STABLE,
    UI_VIRTUAL_SERVICE,
    claims,
    http,
    rollout_spec,
    traffic,
    ui_destination_rule,
    ui_virtual_service,
)

from canary.core.traffic import Traffic
from canary.mesh.istio import (
    plan_destination_rule,
    plan_virtual_service,
    release_destination_rule,
    release_virtual_service,
)

SPEC = rollout_spec()
V1 = {"host": "ui", "subset": STABLE}
V2 = {"host": "ui", "subset": CANARY}


class Mesh:
    """The two objects as the API server would hold them after each write."""

    def __init__(self) -> None:
        self.vs = ui_virtual_service()
        self.dr = ui_destination_rule()

    def apply(self, t: Traffic) -> tuple[bool, bool]:
        planned_vs = plan_virtual_service(self.vs, "ui", SPEC, t)
        planned_dr = plan_destination_rule(self.dr, "ui", SPEC, t)
        self.vs, self.dr = planned_vs.obj, planned_dr.obj
        return planned_vs.changed, planned_dr.changed

    def routes(self) -> list[dict[str, Any]]:
        return http(self.vs)

    def versions(self) -> dict[str, str]:
        return {s["name"]: s["labels"]["version"] for s in self.dr["spec"]["subsets"]}


def test_mirror_then_header_canary_then_split_then_release() -> None:
    mesh = Mesh()
    assert mesh.apply(traffic()) == (False, False)

    # the DestinationRule's subsets are claimed before the first request reaches the canary
    assert mesh.apply(traffic(mirror=100)) == (True, True)
    assert claims(mesh.dr) == {"subsets": {STABLE: "ui", CANARY: "ui"}}
    assert mesh.routes() == [
        {
            "name": "primary",
            "route": [{"destination": V1}],
            "mirror": V2,
            "mirrorPercentage": {"value": 100},
        }
    ]

    assert mesh.apply(traffic(header=True)) == (True, False)
    assert mesh.routes() == [
        {
            "name": "ui-canary",
            "match": [{"headers": {"version": {"exact": "beta"}}}],
            "route": [{"destination": V2}],
        },
        {"name": "primary", "route": [{"destination": V1}]},
    ]

    for weight in (10, 25, 50, 75, 100):
        assert mesh.apply(traffic(weight)) == (True, False)
        assert mesh.routes() == [
            {
                "name": "primary",
                "route": [
                    {"destination": V1, "weight": 100 - weight},
                    {"destination": V2, "weight": weight},
                ],
            }
        ]
        assert mesh.apply(traffic(weight)) == (False, False)

    # release: the stable subset moves to v2 while the canary still takes everything
    assert mesh.apply(traffic(100, stable_version="v2")) == (False, True)
    assert mesh.versions() == {STABLE: "v2", CANARY: "v2"}

    # after the settle delay stable takes the traffic back; no request hit a missing subset
    assert mesh.apply(traffic(0, stable_version="v2")) == (True, False)
    assert mesh.routes() == [{"name": "primary", "route": [{"destination": V1}]}]
    assert mesh.vs["spec"] == UI_VIRTUAL_SERVICE["spec"]
    assert claims(mesh.vs) == {"routes": {"primary": "ui"}}

    assert mesh.apply(traffic(0, stable_version="v2")) == (False, False)


def test_header_canary_for_one_client() -> None:
    spec = rollout_spec(stages={"headerCanary": {"match": [{"clientIP": "141.0.205.122"}]}})
    vs = plan_virtual_service(ui_virtual_service(), "ui", spec, traffic(header=True)).obj
    assert http(vs)[0] == {
        "name": "ui-canary",
        "match": [{"headers": {"x-forwarded-for": {"regex": r"^141\.0\.205\.122(\s*,.*)?$"}}}],
        "route": [{"destination": V2}],
    }


def test_rollback_from_any_stage_is_one_write_to_stable_only() -> None:
    for stage in (traffic(mirror=100), traffic(header=True), traffic(50), traffic(100)):
        mesh = Mesh()
        assert mesh.apply(stage) == (True, True)  # the subsets' claims: one write, once
        assert mesh.apply(traffic()) == (True, False)
        assert mesh.routes() == [{"name": "primary", "route": [{"destination": V1}]}]
        assert mesh.versions() == {STABLE: "v1", CANARY: "v2"}
        assert mesh.apply(traffic()) == (False, False)


def test_deleting_the_rollout_hands_the_objects_back() -> None:
    mesh = Mesh()
    mesh.apply(traffic(50))
    released = release_virtual_service(mesh.vs, "ui", SPEC, "v1")
    assert released.changed
    assert released.obj == UI_VIRTUAL_SERVICE
    dr = release_destination_rule(mesh.dr, "ui", SPEC, "v1").obj
    assert "annotations" not in dr["metadata"]  # the subsets' claims go with the Rollout
    assert {s["name"]: s["labels"]["version"] for s in dr["spec"]["subsets"]} == {
        STABLE: "v1",
        CANARY: "v1",  # both select the stable version, as at every hand-back
    }
