"""The command table: every `canary` command's name and one-line summary, in listing order.

One source of truth for two readers: the typer app (canary.cli.app) takes each command's
summary from here and refuses to start if its commands and this table differ, and the fast
top-level help (canary.cli.entry) prints it without importing typer. Standard library only,
and nothing at all at import: this module is on the path of `canary --help`.
"""

DESCRIPTION = "Progressive delivery for Istio: mirror, header canary, weighted split, release."

COMMANDS: tuple[tuple[str, str], ...] = (
    ("crd", "Print the Rollout CustomResourceDefinition (generated from the models)."),
    ("lint", "Check Rollout files offline: exit 0 when valid, 1 with one line per problem."),
    (
        "plan",
        "Print, step by step, the VirtualService and DestinationRule the controller would write.",
    ),
    ("get", "List Rollouts, or show one in detail: stage, weight, gates, history and events."),
    (
        "dashboard",
        "Serve a local web page of every Rollout, live: stages, traffic, gates, events, buttons.",
    ),
    (
        "promote",
        "Move the release to its next step (past a manual gate), or with --full to release.",
    ),
    ("pause", "Hold the release where it stands: weights stay, analysis stops advancing it."),
    ("resume", "Carry on with a release paused by `canary pause`."),
    ("retry", "Start a rolled-back or aborted release again from its first stage."),
    ("abort", "Stop the release now: all traffic back to stable, no mirror, no header route."),
    ("wait", "Block until the release of one version ends: a GitOps pipeline step."),
    ("controller", "Run the controller: watch Rollouts and drive their releases."),
    (
        "sandbox",
        "Run the local Kubernetes API emulator (with the Istio and Rollout CRDs) until stopped.",
    ),
    (
        "simulate-traffic",
        "Serve Istio-standard metrics for simulated services (steer them with /control).",
    ),
    (
        "demo",
        "A whole release (v1 -> v2) and an automatic rollback (v2 -> v3) on a local sandbox "
        "(or on a cluster: --kubeconfig).",
    ),
    ("record", "Save the range data a Rollout's gates need (one JSON file) for `canary backtest`."),
    (
        "backtest",
        "Replay a release on recorded metrics with the controller's own code; print each check.",
    ),
)
