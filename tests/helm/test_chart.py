"""The chart deploy/helm/canary without a cluster: `helm lint`, `helm template` for the main value
combinations compared with deploy/ (the same RBAC rules, container args and security context as
`kubectl kustomize deploy` and `deploy/namespaced` build), one source for the CRD, the RBAC
rules, the dashboard and the alerts, the ServiceMonitor and PrometheusRule only where the cluster
serves them, and values.schema.json refusing wrong values."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from helm_helpers import CHART, ROOT, helm_run, kinds, one, render, set_args
from reliability.test_security import (
    NEEDED,
    NEEDED_FOR_LEADER_ELECTION,
    cluster_role,
    grants,
    kustomize,
    leader_role,
)

MONITORING = [
    "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
    "--api-versions", "monitoring.coreos.com/v1/PrometheusRule",
]  # fmt: skip
MONITORING_ON = {
    "serviceMonitor.enabled": "true",
    "prometheusRule.enabled": "true",
    "grafanaDashboard.enabled": "true",
}


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    [only] = pod["containers"]
    return dict(only)


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(one(objects, "Deployment")["spec"]["template"]["spec"])


def test_helm_lint_passes_strictly() -> None:
    result = helm_run("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout
    for values in ({"rbac.scope": "namespace", "rbac.watchNamespace": "shop"}, MONITORING_ON):
        helm_run("lint", "--strict", str(CHART), *set_args(values))


def test_the_chart_carries_no_copy_of_the_crd_rules_dashboard_or_alerts() -> None:
    """Each is a symlink to its one source, and helm renders that source's content."""
    sources = {
        "crds/rollout.yaml": ROOT / "crds" / "rollout.yaml",
        "files/clusterrole.yaml": ROOT / "deploy" / "clusterrole.yaml",
        "files/canary-dashboard.json": ROOT / "deploy" / "grafana" / "canary-dashboard.json",
        "files/canary-alerts.yaml": ROOT / "deploy" / "prometheus" / "canary-alerts.yaml",
    }
    for inside, source in sources.items():
        assert (CHART / inside).is_symlink(), inside
        assert (CHART / inside).resolve() == source.resolve(), inside
    objects = render(MONITORING_ON, *MONITORING)
    crd = one(objects, "CustomResourceDefinition")
    assert crd == yaml.safe_load((ROOT / "crds" / "rollout.yaml").read_text())
    dashboard = one(objects, "ConfigMap", "canary-controller-dashboard")
    assert json.loads(dashboard["data"]["canary-dashboard.json"]) == json.loads(
        sources["files/canary-dashboard.json"].read_text()
    )
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    rule = one(objects, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(sources["files/canary-alerts.yaml"].read_text())


def test_default_is_deploy_cluster_wide_install() -> None:
    """The same kinds as `kubectl kustomize deploy` (less its Namespace: helm's -n makes it),
    the same RBAC rules, container args, security contexts, resources and replicas."""
    chart = render()
    deploy = kustomize("deploy")
    assert kinds(chart) == sorted(k for k in kinds(deploy) if k != "Namespace")
    assert grants(one(chart, "ClusterRole")) == grants(cluster_role()) == NEEDED
    leader = one(chart, "Role", "canary-controller-leader-election")
    assert grants(leader) == grants(leader_role()) == NEEDED_FOR_LEADER_ELECTION
    assert leader["metadata"]["namespace"] == "canary-system"
    binding = one(chart, "ClusterRoleBinding")
    assert binding["subjects"] == one(deploy, "ClusterRoleBinding")["subjects"]
    ours, theirs = container(chart), container(deploy)
    for key in ("args", "securityContext", "resources", "ports", "livenessProbe",
                "readinessProbe", "volumeMounts", "image"):  # fmt: skip
        assert ours[key] == theirs[key], key
    assert pod_spec(chart)["securityContext"] == pod_spec(deploy)["securityContext"]
    assert pod_spec(chart)["volumes"] == pod_spec(deploy)["volumes"]
    assert pod_spec(chart)["serviceAccountName"] == "canary-controller"
    assert one(chart, "Deployment")["spec"]["replicas"] == 2
    service = one(chart, "Service")
    assert service["metadata"]["name"] == one(deploy, "Service")["metadata"]["name"]
    assert service["spec"]["ports"] == one(deploy, "Service")["spec"]["ports"]


def test_namespaced_rbac_is_deploy_namespaced() -> None:
    chart = render({"rbac.scope": "namespace", "rbac.watchNamespace": "shop"})
    deploy = kustomize("deploy/namespaced")
    assert "ClusterRole" not in kinds(chart) and "ClusterRoleBinding" not in kinds(chart)
    role = one(chart, "Role", "canary-controller")
    theirs = one(deploy, "Role", "canary-controller")
    assert role["metadata"]["namespace"] == "shop"
    assert grants(role) == grants(theirs) == NEEDED
    binding = one(chart, "RoleBinding", "canary-controller")
    assert binding["metadata"]["namespace"] == "shop"
    assert binding["subjects"] == one(deploy, "RoleBinding", "canary-controller")["subjects"]
    assert container(chart)["args"] == container(deploy)["args"]
    assert "--namespace=shop" in container(chart)["args"]


def test_leader_election_with_two_replicas_and_without_it_one() -> None:
    chart = render({"replicas": "2", "leaderElection.enabled": "true"}, namespace="ops")
    assert one(chart, "Deployment")["spec"]["replicas"] == 2
    args = container(chart)["args"]
    assert "--leader-elect" in args and "--lease-namespace=ops" in args
    alone = render({"replicas": "1", "leaderElection.enabled": "false"})
    assert not any(a.startswith(("--leader-elect", "--lease")) for a in container(alone)["args"])
    assert "Role" not in kinds(alone)  # no Lease to grant


def test_shards_share_the_rollouts_on_leases_instead_of_a_leader() -> None:
    chart = render({"replicas": "3", "shards": "6"}, namespace="ops")
    args = container(chart)["args"]
    assert "--shards=6" in args and "--lease-namespace=ops" in args
    assert "--leader-elect" not in args  # the shard Leases fence the writes
    role = one(chart, "Role", "canary-controller-leader-election")
    assert grants(role) == NEEDED_FOR_LEADER_ELECTION  # list and delete included
    unelected = render({"replicas": "3", "shards": "6", "leaderElection.enabled": "false"})
    assert "--shards=6" in container(unelected)["args"]
    assert "Role" in kinds(unelected)
    assert not any(a.startswith("--shards") for a in container(render({}))["args"])


def test_a_release_cap_is_passed_to_the_controller_and_none_by_default() -> None:
    capped = container(render({"maxConcurrentReleases": "3"}))["args"]
    assert "--max-concurrent-releases=3" in capped
    default = container(render({}))["args"]
    assert not any(a.startswith("--max-concurrent-releases") for a in default)


def test_monitoring_on_renders_the_service_monitor_and_rule_where_served() -> None:
    objects = render(MONITORING_ON, *MONITORING)
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert one(objects, "PrometheusRule")["spec"]["groups"]


def test_monitoring_on_a_cluster_without_prometheus_operator_is_left_out() -> None:
    """No monitoring.coreos.com API: no object the API server would refuse; NOTES says so."""
    objects = render(MONITORING_ON)
    assert "ServiceMonitor" not in kinds(objects) and "PrometheusRule" not in kinds(objects)
    assert "ConfigMap" in kinds(objects)  # a plain ConfigMap needs nothing
    notes = helm_run(
        "install", "canary", str(CHART), "--dry-run=client", *set_args(MONITORING_ON)
    ).stdout
    assert "the ServiceMonitor was left out" in notes
    assert "the PrometheusRule was left out" in notes


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        ({"replicas": "two"}, "at '/replicas': got string, want integer"),
        ({"leaderElection.enabled": "false"}, "at '/replicas': maximum: got 2, want 1"),
        ({"rbac.scope": "everywhere"}, "at '/rbac/scope'"),
        ({"rbac.scope": "namespace"}, "at '/rbac/watchNamespace': minLength"),
        ({"logLevel": "loud"}, "at '/logLevel'"),
        ({"metrics.port": "70000"}, "at '/metrics/port'"),
        ({"serviceMonitor.interval": "often"}, "at '/serviceMonitor/interval'"),
        ({"replica": "3"}, "additional properties 'replica' not allowed"),
        ({"maxConcurrentReleases": "-1"}, "at '/maxConcurrentReleases'"),
    ],
)
def test_a_wrong_value_is_refused_by_lint_and_template(
    values: dict[str, str], refusal: str
) -> None:
    for command in ("lint", "template"):
        result = helm_run(command, str(CHART), *set_args(values), check=False)
        assert result.returncode != 0, (command, values)
        output = result.stdout + result.stderr
        assert "values don't meet the specifications of the schema" in output, output
        assert refusal in output, output
