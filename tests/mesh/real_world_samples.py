"""VirtualServices and DestinationRules after the shapes of public examples, in our own values.

Each sample is what a new user brings, with the Rollout they would write and what canary says:
`None` (lint passes and `canary plan` plans a whole release) or the one sentence it refuses with.
The shapes follow Istio's bookinfo `reviews` (one unnamed route; a header route for one user;
a 50/50 split between two versions), helloworld and httpbin behind a gateway, Argo Rollouts'
named route beside a TLS route, Flagger's podinfo with CORS, retries and header rewriting, and a
gateway VirtualService that delegates to a VirtualService without hosts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]


def vs(name: str, namespace: str, spec: Json) -> Json:
    meta = {"name": name, "namespace": namespace}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": meta,
        "spec": spec,
    }


def dr(name: str, namespace: str, host: str, subsets: dict[str, Json], **spec: Any) -> Json:
    body = {"host": host, **spec, "subsets": [{"name": k, "labels": v} for k, v in subsets.items()]}
    meta = {"name": name, "namespace": namespace}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": meta,
        "spec": body,
    }


def dest(
    host: str, subset: str | None = None, weight: int | None = None, port: int | None = None
) -> Json:
    destination: Json = {"host": host}
    if subset is not None:
        destination["subset"] = subset
    if port is not None:
        destination["port"] = {"number": port}
    entry: Json = {"destination": destination}
    if weight is not None:
        entry["weight"] = weight
    return entry


@dataclass(frozen=True)
class Sample:
    name: str
    virtual_service: Json
    destination_rule: Json
    host: str
    route: str | None = None
    stable: str = "stable"
    canary: str = "canary"
    refusal: str | None = None  # None: the release plans
    stages: Json = field(
        default_factory=lambda: {
            "mirror": {"percent": 50},
            "headerCanary": {"match": [{"headers": {"x-canary": {"exact": "on"}}}]},
            "split": {"steps": [20, 50, 100]},
        }
    )

    def rollout(self) -> Json:
        namespace = self.virtual_service["metadata"]["namespace"]
        reference: Json = {"name": self.virtual_service["metadata"]["name"]}
        if self.route is not None:
            reference["route"] = self.route
        return {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": self.host, "namespace": namespace},
            "spec": {
                "host": self.host,
                "virtualService": reference,
                "destinationRule": {"name": self.destination_rule["metadata"]["name"]},
                "stable": {"subset": self.stable},
                "canary": {"subset": self.canary, "version": "v4"},
                "stages": copy.deepcopy(self.stages),
                "analysis": {"gates": [{"name": "success-rate", "successRate": {"min": 99}}]},
            },
        }


VERSIONS = {"v1": {"version": "v1"}, "v2": {"version": "v2"}, "v3": {"version": "v3"}}
REVIEWS_DR = dr("reviews", "books", "reviews", VERSIONS)

SAMPLES = [
    Sample(
        "reviews: one unnamed route to v1",
        vs(
            "reviews", "books", {"hosts": ["reviews"], "http": [{"route": [dest("reviews", "v1")]}]}
        ),
        REVIEWS_DR,
        host="reviews",
        stable="v1",
        canary="v2",
    ),
    Sample(
        "reviews: a route for one user above the default one, no route named",
        vs(
            "reviews",
            "books",
            {
                "hosts": ["reviews"],
                "http": [
                    {
                        "match": [{"headers": {"end-user": {"exact": "ana"}}}],
                        "route": [dest("reviews", "v2")],
                    },
                    {"route": [dest("reviews", "v1")]},
                ],
            },
        ),
        REVIEWS_DR,
        host="reviews",
        stable="v1",
        canary="v2",
        refusal=(
            "VirtualService books/reviews has 2 http routes to host reviews (http[0] with no name "
            'matching [{"headers":{"end-user":{"exact":"ana"}}}], http[1] with no name matching '
            "every request): give the one to steer a `name` and set spec.virtualService.route of "
            "Rollout books/reviews to it."
        ),
    ),
    Sample(
        "reviews: the default route named, the user's route still on the canary subset",
        vs(
            "reviews",
            "books",
            {
                "hosts": ["reviews"],
                "http": [
                    {
                        "match": [{"headers": {"end-user": {"exact": "ana"}}}],
                        "route": [dest("reviews", "v2")],
                    },
                    {"name": "default", "route": [dest("reviews", "v1")]},
                ],
            },
        ),
        REVIEWS_DR,
        host="reviews",
        route="default",
        stable="v1",
        canary="v2",
        refusal=(
            "VirtualService books/reviews http[0] sends traffic to subset 'v2', the canary subset "
            "that only Rollout books/reviews may steer, so those requests would reach the canary "
            "without any check: point it at subset 'v1' or at a subset of one fixed version."
        ),
    ),
    Sample(
        "reviews: half to v1, half to v3",
        vs(
            "reviews",
            "books",
            {
                "hosts": ["reviews"],
                "http": [{"route": [dest("reviews", "v1", 50), dest("reviews", "v3", 50)]}],
            },
        ),
        REVIEWS_DR,
        host="reviews",
        stable="v1",
        canary="v2",
        refusal=(
            "VirtualService books/reviews route without a name also sends traffic to subset 'v3', "
            "which Rollout books/reviews would drop when it sets the route's destinations to its "
            "subsets 'v1' and 'v2': send that route to subset 'v1' alone or steer another route."
        ),
    ),
    Sample(
        "helloworld behind a gateway, no subset on the route",
        vs(
            "helloworld",
            "hello",
            {
                "hosts": ["*"],
                "gateways": ["helloworld-gateway"],
                "http": [
                    {
                        "match": [{"uri": {"exact": "/hello"}}],
                        "route": [dest("helloworld", port=5000)],
                    }
                ],
            },
        ),
        dr(
            "helloworld",
            "hello",
            "helloworld",
            {"stable": {"version": "v1"}, "canary": {"version": "v2"}},
        ),
        host="helloworld",
    ),
    Sample(
        "httpbin with retries and fault injection, mirroring to a shadow",
        vs(
            "httpbin",
            "web",
            {
                "hosts": ["httpbin.example.org"],
                "gateways": ["istio-system/public"],
                "http": [
                    {
                        "name": "status-and-delay",
                        "match": [{"uri": {"prefix": "/status"}}, {"uri": {"prefix": "/delay"}}],
                        "route": [dest("httpbin.web.svc.cluster.local", "stable", port=8000)],
                        "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx"},
                        "fault": {"delay": {"fixedDelay": "1s", "percentage": {"value": 1.0}}},
                        "mirror": {"host": "httpbin-shadow"},
                        "mirrorPercentage": {"value": 10.0},
                    }
                ],
            },
        ),
        dr("httpbin", "web", "httpbin", {"stable": {"version": "v1"}, "canary": {"version": "v2"}}),
        host="httpbin",
        refusal=(
            "VirtualService web/httpbin route 'status-and-delay' already mirrors to "
            '{"host":"httpbin-shadow"}, which the mirror stage of Rollout web/httpbin would '
            "replace with its own mirror to subset 'canary': remove that mirror from the route or "
            "drop spec.stages.mirror from the Rollout."
        ),
    ),
    Sample(
        "httpbin with its shadow mirror, and a Rollout without a mirror stage",
        vs(
            "httpbin",
            "web",
            {
                "hosts": ["httpbin.example.org"],
                "gateways": ["istio-system/public"],
                "http": [
                    {
                        "name": "status-and-delay",
                        "match": [{"uri": {"prefix": "/status"}}, {"uri": {"prefix": "/delay"}}],
                        "route": [dest("httpbin.web.svc.cluster.local", "stable", port=8000)],
                        "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx"},
                        "mirror": {"host": "httpbin-shadow"},
                        "mirrorPercentage": {"value": 10.0},
                    }
                ],
            },
        ),
        dr("httpbin", "web", "httpbin", {"stable": {"version": "v1"}, "canary": {"version": "v2"}}),
        host="httpbin",
        stages={"split": {"steps": [10, 100]}},
    ),
    Sample(
        "a named route beside a TLS route, after Argo Rollouts' example",
        vs(
            "demo",
            "argo",
            {
                "hosts": ["demo.local", "demo"],
                "gateways": ["demo-gateway", "mesh"],
                "http": [
                    {
                        "name": "primary",
                        "route": [dest("demo", "stable", 100), dest("demo", "canary", 0)],
                    }
                ],
                "tls": [
                    {
                        "match": [{"port": 443, "sniHosts": ["demo.local"]}],
                        "route": [dest("demo", "stable", port=443)],
                    }
                ],
            },
        ),
        dr(
            "demo",
            "argo",
            "demo",
            {
                "stable": {"app": "demo", "version": "v1"},
                "canary": {"app": "demo", "version": "v2"},
            },
        ),
        host="demo",
        route="primary",
    ),
    Sample(
        "podinfo with CORS, retries and header rewriting, after Flagger's example",
        vs(
            "podinfo",
            "test",
            {
                "hosts": ["app.example.com", "podinfo"],
                "gateways": ["public-gateway.istio-system.svc.cluster.local", "mesh"],
                "exportTo": ["."],
                "http": [
                    {
                        "match": [{"uri": {"prefix": "/"}}],
                        "rewrite": {"uri": "/"},
                        "corsPolicy": {
                            "allowOrigins": [{"exact": "https://app.example.com"}],
                            "allowMethods": ["GET"],
                            "maxAge": "24h",
                        },
                        "headers": {"request": {"add": {"x-some-header": "value"}}},
                        "retries": {
                            "attempts": 3,
                            "perTryTimeout": "1s",
                            "retryOn": "gateway-error,connect-failure",
                        },
                        "timeout": "5s",
                        "route": [dest("podinfo", "primary")],
                    }
                ],
            },
        ),
        dr(
            "podinfo",
            "test",
            "podinfo",
            {
                "primary": {"app": "podinfo", "version": "v1"},
                "canary": {"app": "podinfo", "version": "v2"},
            },
            trafficPolicy={"tls": {"mode": "ISTIO_MUTUAL"}},
        ),
        host="podinfo",
        stable="primary",
    ),
    Sample(
        "a gateway VirtualService that delegates the host's paths",
        vs(
            "shop-gateway",
            "shop",
            {
                "hosts": ["shop.example.com"],
                "gateways": ["istio-system/public"],
                "http": [
                    {"match": [{"uri": {"prefix": "/ui"}}], "delegate": {"name": "ui-routes"}}
                ],
            },
        ),
        dr("ui", "shop", "ui", {"stable": {"version": "v1"}, "canary": {"version": "v2"}}),
        host="ui",
        refusal=(
            "VirtualService shop/shop-gateway has no http route to host ui (http[0] delegates "
            "to VirtualService shop/ui-routes: point spec.virtualService.name there): add a "
            "route with `route: [{destination: {host: ui}}]` or fix spec.host or "
            "spec.virtualService of Rollout shop/ui."
        ),
    ),
    Sample(
        "the delegate itself: a VirtualService without hosts",
        vs(
            "ui-routes",
            "shop",
            {
                "http": [
                    {
                        "match": [{"uri": {"prefix": "/ui/"}}],
                        "route": [dest("ui.shop.svc.cluster.local", "stable")],
                    }
                ]
            },
        ),
        dr("ui", "shop", "ui", {"stable": {"version": "v1"}, "canary": {"version": "v2"}}),
        host="ui",
    ),
]
