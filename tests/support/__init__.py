"""What the tests of every tier share, one module per idea.

tests/conftest.py sits in a directory without `__init__.py`, so pytest (its default `prepend`
import mode) puts tests/ on sys.path and this package imports as `support`, e.g.
`from support.binaries import require_binary`. A helper that only one tier uses stays in that
tier, in a module named `<what>_helpers.py` (unique across tiers: pytest puts every tier's
directory on sys.path too); tests/mesh's real-world samples are data, named for it.

- `binaries`: the real binaries (prometheus, kubectl, chromium, ...): skip locally, fail under
  CI=true when one is missing.
- `browser`: a headless chromium driven by selenium.
- `controlplane`: the real control plane's fixtures (loaded as a plugin by tests/conftest.py).
- `controller`: the controller's runtime on a thread of the test's process.
- `istio_crds`: Istio's own CRD schemas, to check offline what we plan.
- `polling`: `wait_until`, the one wait for state another thread or process produces.
- `rollouts`: Rollout objects built from examples/ui.
- `scraped`: a real Prometheus scraping the traffic simulator.
- `stacks`: examples/ui on an API server with simulated traffic and a real Prometheus.
- `traffic`: how a VirtualService and DestinationRule route `ui`'s traffic.
"""
