"""Dependencies point one way (STYLE.md): binaries -> training / evaluation / analysis /
exporters -> models -> losses; data stands alone; evaluation may read exports, but the
exporters never import evaluation."""
import ast
import os

import pytest

from testutil import REPO

PACKAGE = os.path.join(REPO, "dcgan_keras")
# package -> the dcgan_keras packages its modules must never import.
FORBIDDEN = {
    "models": {"training", "evaluation", "exporters", "analysis", "binaries", "data", "config",
               "evolution"},
    "data": {"models", "training", "evaluation", "exporters", "analysis", "binaries", "config"},
    "exporters": {"evaluation", "binaries", "analysis"},
    "evaluation": {"binaries", "analysis"},
    "training": {"binaries", "exporters", "analysis"},
    "evolution": {"training", "evaluation", "exporters", "analysis", "binaries", "data",
                  "config"},
    "utils": {"models", "training", "evaluation", "exporters", "analysis", "binaries"},
}


def _imports(path):
    """The dcgan_keras subpackages (or top-level modules) a file imports, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module + "." + a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "dcgan_keras" and len(parts) > 1:
                found.add(parts[1])
    return found


def _modules(package):
    for root, _, files in os.walk(os.path.join(PACKAGE, package)):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(root, name)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package):
    bad = {os.path.relpath(path, REPO): sorted(_imports(path) & FORBIDDEN[package])
           for path in _modules(package)}
    assert not {k: v for k, v in bad.items() if v}


def test_the_checker_sees_imports():
    path = os.path.join(PACKAGE, "exporters", "export_lib.py")
    assert {"models", "exporters"} <= _imports(path)
