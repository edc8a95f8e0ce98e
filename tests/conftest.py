"""The tests' root. Being here, in a directory without `__init__.py`, it makes pytest (default
`prepend` import mode) put tests/ on sys.path, so that every tier can import the modules shared
by all of them, e.g. `from binary_support import require_binary`. Its only fixtures are the real
control plane's (`controlplane_support`), loaded as a plugin so that every tier can use them."""

from hypothesis import settings

pytest_plugins = ["controlplane_support"]

# Tests assert behaviour, never wall-clock time: a property that takes longer than hypothesis's
# default 200 ms deadline on a loaded machine is not a failure.
settings.register_profile("canary", deadline=None)
settings.load_profile("canary")
