"""The tests' root. Being here, in a directory without `__init__.py`, it makes pytest (default
`prepend` import mode) put tests/ on sys.path, so that every tier can import the package of what
they all share, tests/support/, e.g. `from support.binaries import require_binary`. Its only
fixtures are the real control plane's (`support.controlplane`), loaded as a plugin so that every
tier can use them."""

import pytest
from hypothesis import HealthCheck, settings

# The shared helpers' own asserts explain themselves as a test's do.
pytest.register_assert_rewrite("support")

pytest_plugins = ["support.controlplane"]

# Tests assert behaviour, never wall-clock time: a property that takes longer than hypothesis's
# default 200 ms deadline, or whose examples are slow to generate, on a loaded machine is not a
# failure. Every property test runs with this profile; a test's own settings add to it.
settings.register_profile(
    "canary", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("canary")
