"""Dependencies point one way (STYLE.md, docs/design.md "The layers"): binaries -> training /
evaluation / analysis / exporters -> workdir -> models -> losses; data stands alone;
evaluation may read exports, but the exporters never import evaluation; whatever reads a
trained run loads it through workdir.py, never through training's checkpoints or
strategies."""
import ast
import os

import pytest

from testutil import REPO

PACKAGE = os.path.join(REPO, "dcgan_keras")
# Reading a workdir (checkpoints, restoring, metadata, fingerprints) goes through workdir.py.
TRAINING_INTERNALS = {"training.checkpoints", "training.strategies"}
# package, module or sub-package -> the dcgan_keras modules (a package, or a dotted module
# inside one) that its modules must never import.
FORBIDDEN = {
    "models": {"training", "evaluation", "exporters", "analysis", "binaries", "data", "config",
               "evolution", "workdir"},
    "data": {"models", "training", "evaluation", "exporters", "analysis", "binaries", "config",
             "workdir"},
    "exporters": {"evaluation", "binaries", "analysis", "training"},
    "evaluation": {"binaries", "analysis"} | TRAINING_INTERNALS,
    "analysis": {"binaries", "training"},
    "training": {"binaries", "exporters", "analysis"},
    "evolution": {"training", "evaluation", "exporters", "analysis", "binaries", "data",
                  "config", "workdir"},
    "utils": {"models", "training", "evaluation", "exporters", "analysis", "binaries", "config",
              "workdir"},
    "config": {"training", "evaluation", "exporters", "analysis", "binaries", "workdir"},
    "workdir": {"training", "evaluation", "exporters", "analysis", "binaries", "evolution"},
}


def _imports(path):
    """The dcgan_keras modules a file imports, at any depth, each with every package above
    it: `from dcgan_keras.training import checkpoints` gives "training" and
    "training.checkpoints"."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module + "." + a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "dcgan_keras":
                found.update(".".join(parts[1:i]) for i in range(2, len(parts) + 1))
    return found


def _modules(package):
    """The files of a sub-package (a folder) or of a top-level module (package.py)."""
    single = os.path.join(PACKAGE, package.replace(".", os.sep) + ".py")
    if os.path.exists(single):
        yield single
        return
    for root, _, files in os.walk(os.path.join(PACKAGE, package.replace(".", os.sep))):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(root, name)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package):
    assert list(_modules(package))
    bad = {os.path.relpath(path, REPO): sorted(_imports(path) & FORBIDDEN[package])
           for path in _modules(package)}
    assert not {k: v for k, v in bad.items() if v}


def test_the_checker_sees_imports():
    path = os.path.join(PACKAGE, "exporters", "export_lib.py")
    assert {"models", "models.features", "exporters", "exporters.tflite", "workdir"} <= (
        _imports(path))
    assert {"training", "training.checkpoints"} <= _imports(
        os.path.join(PACKAGE, "training", "reliability.py"))
    assert list(_modules("workdir")) == [os.path.join(PACKAGE, "workdir.py")]


def test_the_checker_sees_module_level_edges(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("from dcgan_keras.training.checkpoints import restore_models\n"
                    "import dcgan_keras.training.strategies as s\n")
    assert TRAINING_INTERNALS <= _imports(str(path))
    assert not _imports(str(path)) & {"workdir", "training.hardware"}
