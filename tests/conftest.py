"""The tests' root. It holds no fixtures: being here, in a directory without `__init__.py`, it
makes pytest (default `prepend` import mode) put tests/ on sys.path, so that every tier can
import the modules shared by all of them, e.g. `from binary_support import require_binary`."""
