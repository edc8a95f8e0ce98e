"""The Istio planner on DestinationRules.

Aspects: the version label of both subsets, everything else untouched, missing subsets and a
DestinationRule for another host.
"""

from __future__ import annotations

import pytest
from mesh_helpers import CANARY, STABLE, refusal, rollout_spec, traffic, ui_destination_rule

from canary.mesh.istio import MeshError, plan_destination_rule

SPEC = rollout_spec()


def test_subsets_already_selecting_the_versions_plan_no_write() -> None:
    dr = ui_destination_rule()
    planned = plan_destination_rule(
        dr, "ui", SPEC, traffic(stable_version="v1", canary_version="v2")
    )
    assert planned.changed is False
    assert planned.obj == dr
    assert planned.obj is not dr


def test_only_the_version_label_of_our_subsets_moves() -> None:
    dr = ui_destination_rule()
    dr["spec"]["subsets"].append({"name": "legacy", "labels": {"version": "v0"}})
    before = ui_destination_rule()
    planned = plan_destination_rule(
        dr, "ui", SPEC, traffic(stable_version="v2", canary_version="v3")
    )
    subsets = planned.obj["spec"]["subsets"]
    assert subsets == [
        {"name": STABLE, "labels": {"app": "ui", "version": "v2"}},
        {"name": CANARY, "labels": {"app": "ui", "version": "v3"}},
        {"name": "legacy", "labels": {"version": "v0"}},
    ]
    assert planned.obj["spec"]["trafficPolicy"] == before["spec"]["trafficPolicy"]
    assert dr["spec"]["subsets"][0]["labels"]["version"] == "v1"  # input untouched


def test_a_custom_version_label_is_set_beside_the_existing_ones() -> None:
    spec = rollout_spec(versionLabel="app.kubernetes.io/version")
    planned = plan_destination_rule(ui_destination_rule(), "ui", spec, traffic())
    assert planned.obj["spec"]["subsets"][0]["labels"] == {
        "app": "ui",
        "version": "v1",
        "app.kubernetes.io/version": "v1",
    }


def test_a_subset_without_labels_gets_them() -> None:
    dr = ui_destination_rule()
    del dr["spec"]["subsets"][1]["labels"]
    planned = plan_destination_rule(dr, "ui", SPEC, traffic())
    assert planned.obj["spec"]["subsets"][1]["labels"] == {"version": "v2"}


@pytest.mark.parametrize(("field", "subset"), [("stable", STABLE), ("canary", CANARY)])
def test_a_missing_subset_names_the_rule_the_subset_and_the_fix(field: str, subset: str) -> None:
    dr = ui_destination_rule()
    dr["spec"]["subsets"] = [s for s in dr["spec"]["subsets"] if s["name"] != subset]
    assert refusal(plan_destination_rule, dr, "ui", SPEC, traffic()) == (
        f"DestinationRule shop/ui has no subset named '{subset}': add a subset "
        f"`name: {subset}` (the controller sets its version label) or fix "
        f"spec.{field}.subset of Rollout shop/ui."
    )


def test_a_rule_without_subsets_is_refused() -> None:
    dr = ui_destination_rule()
    del dr["spec"]["subsets"]
    with pytest.raises(MeshError, match="has no subset named 'version-1'"):
        plan_destination_rule(dr, "ui", SPEC, traffic())


def test_a_rule_for_another_host_is_refused() -> None:
    dr = ui_destination_rule()
    dr["spec"]["host"] = "payments.shop.svc.cluster.local"
    assert refusal(plan_destination_rule, dr, "ui", SPEC, traffic()) == (
        "DestinationRule shop/ui is for host 'payments.shop.svc.cluster.local', not 'ui': "
        "point spec.destinationRule.name of Rollout shop/ui at the DestinationRule of ui."
    )


def test_a_rule_for_the_full_name_of_the_host_is_accepted() -> None:
    dr = ui_destination_rule()
    dr["spec"]["host"] = "ui.shop.svc.cluster.local"
    assert plan_destination_rule(dr, "ui", SPEC, traffic()).changed is False
