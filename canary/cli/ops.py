"""Commands that run things: the controller, the sandbox, the traffic simulator, the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("controller")(controller)
    app.command("sandbox")(sandbox)
    app.command("simulate-traffic")(simulate_traffic)
    app.command("demo")(demo)


def controller(
    kubeconfig: Annotated[str | None, typer.Option(help="Path to a kubeconfig.")] = None,
    context: Annotated[str | None, typer.Option(help="The kubeconfig context to use.")] = None,
    in_cluster: Annotated[bool, typer.Option(help="Use the pod's service account.")] = False,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Watch one namespace only.")
    ] = None,
    leader_elect: Annotated[bool, typer.Option(help="Run only while holding a Lease.")] = False,
    lease_namespace: Annotated[
        str, typer.Option(help="Namespace of the Lease (of the shard Leases with --shards).")
    ] = "canary-system",
    metrics_addr: Annotated[str, typer.Option(help="/metrics, /healthz, /readyz.")] = ":8080",
    qps: Annotated[float, typer.Option(help="Kubernetes API requests per second.")] = 20.0,
    burst: Annotated[int, typer.Option(help="Kubernetes API burst.")] = 40,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    notifications: Annotated[
        str | None,
        typer.Option(help="A YAML file of notification receivers for every Rollout."),
    ] = None,
    metrics_source: Annotated[
        str,
        typer.Option(
            help="prometheus (query spec.prometheus.url), or scrape: read that URL's /metrics "
            "directly, for the demo on a machine without Prometheus."
        ),
    ] = "prometheus",
    informers: Annotated[
        bool,
        typer.Option(help="Read VirtualServices and DestinationRules from watch-fed caches."),
    ] = True,
    batch_queries: Annotated[
        bool,
        typer.Option(help="One grouped PromQL query per gate kind for every Rollout."),
    ] = True,
    query_bucket: Annotated[
        float, typer.Option(help="Seconds a grouped PromQL answer is shared.")
    ] = 1.0,
    store_every_check: Annotated[
        bool,
        typer.Option(
            help="Write every check to the status, even one that repeats the stored check "
            "(by default a repeat is stored every 5 minutes)."
        ),
    ] = False,
    max_concurrent_releases: Annotated[
        int,
        typer.Option(
            min=0,
            help="Releases under way at once, for this controller; the others wait in Pending "
            "(the reason in their status) and begin, longest waiting first, as slots free. "
            "A release under way is never interrupted. 0: no cap.",
        ),
    ] = 0,
    shards: Annotated[
        int,
        typer.Option(
            min=0,
            help="Share the Rollouts among the replicas that run with the same value: each "
            "Rollout belongs to one of this many shards, each shard owned by one replica "
            "through a Lease in --lease-namespace. 0 or 1: one replica writes (with "
            "--leader-elect for a standby).",
        ),
    ] = 0,
    identity: Annotated[
        str | None,
        typer.Option(
            help="This replica's name in its Leases and in its API user agent (the audit log "
            "shows it). Default: the host name (a Pod's name) and a random suffix.",
        ),
    ] = None,
) -> None:
    from canary.controller.main import LEADER_ELECT_WITH_SHARDS, ControllerOptions, run
    from canary.controller.runtime import default_identity
    from canary.notify.config import ConfigError, load_config

    if leader_elect and shards > 1:
        typer.echo(f"error: {LEADER_ELECT_WITH_SHARDS}", err=True)
        raise typer.Exit(2)
    if notifications is not None:
        try:
            load_config(notifications)
        except ConfigError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None

    run(
        ControllerOptions(
            kubeconfig=kubeconfig,
            context=context,
            in_cluster=in_cluster,
            namespace=namespace,
            leader_elect=leader_elect,
            lease_namespace=lease_namespace,
            metrics_addr=metrics_addr,
            qps=qps,
            burst=burst,
            log_level=log_level,
            notifications=notifications,
            metrics_source=metrics_source,
            informers=informers,
            batch_queries=batch_queries,
            query_bucket_seconds=query_bucket,
            store_every_check=store_every_check,
            max_concurrent_releases=max_concurrent_releases,
            shards=shards,
            identity=identity or default_identity(),
        )
    )


def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8001,
    kubeconfig: Annotated[str | None, typer.Option(help="Write a kubeconfig here.")] = None,
) -> None:
    import tempfile

    import yaml

    from canary.core.crd import rollout_crd
    from canary_sandbox.apiserver import serve

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as crd_file:
        yaml.safe_dump(rollout_crd(), crd_file)
    serve(port, kubeconfig, [crd_file.name])


def simulate_traffic(
    service: Annotated[
        list[str], typer.Option(help="NAMESPACE/NAME:VERSION[,VERSION...]; repeatable.")
    ],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 for /metrics.")] = 9100,
    rps: Annotated[float, typer.Option(help="Requests per second per service.")] = 50.0,
    header_share: Annotated[float, typer.Option(help="Share of requests with the header.")] = 0.05,
    kubeconfig: Annotated[
        str | None,
        typer.Option(help="Follow each service's VirtualService on this kubeconfig's API server."),
    ] = None,
    route: Annotated[str, typer.Option(help="The managed http route's name.")] = "primary",
) -> None:
    from canary_sandbox.traffic import ServiceSpec, serve

    serve(
        [ServiceSpec.parse(s) for s in service],
        port=port,
        rps=rps,
        header_share=header_share,
        kubeconfig=kubeconfig,
        route=route,
    )


def demo(
    interval: Annotated[float, typer.Option(help="Analysis interval, seconds.")] = 2.0,
    error_rate: Annotated[float, typer.Option(help="5xx share of the bad version v3.")] = 0.2,
    output: Annotated[str, typer.Option("-o", "--output", help="text or json")] = "text",
    prometheus: Annotated[
        bool, typer.Option(help="Use a real Prometheus when one is installed.")
    ] = True,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            help="Run on this kubeconfig's cluster (e.g. `./dev cluster --kubeconfig FILE`) "
            "instead of the embedded sandbox."
        ),
    ] = None,
    namespace: Annotated[
        str, typer.Option("-n", "--namespace", help="With --kubeconfig: where examples/ui goes.")
    ] = "shop",
) -> None:
    from canary.cli.demo import DemoError, run_demo

    try:
        ok = run_demo(
            interval=interval,
            error_rate=error_rate,
            output=output,
            use_prometheus=prometheus,
            kubeconfig=kubeconfig,
            namespace=namespace,
        )
    except DemoError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(0 if ok else 1)
