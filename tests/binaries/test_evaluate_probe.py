"""The evaluate binary's svm_probe on a tiny trained run, and the evaluator registry."""
import json
import os

import numpy as np
import pytest
from testutil import run_binary, write_idx

from dcgan_keras.evaluation import probe_eval, registry

PROBE_OPTIONS = dict(labels_per_class=2, val_size=10, draws=2, kmeans_centroids=8,
                     kmeans_patches=500, c_grid=[1e-2, 1.0], trials=1,
                     baselines=list(probe_eval.BASELINES))


def _tiny_fashion_mnist(directory, n=64):
    """Fake Fashion-MNIST IDX files: 28x28 noise with a bright square placed by the class."""
    os.makedirs(directory)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, (n, 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label:10 + 2 * label, 4 + label:12 + label] = 250
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), images)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), labels)
    return directory


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(workdir, export_dir) of a 2-step run on tiny fake Fashion-MNIST."""
    from dcgan_keras.config import TrainConfig
    from dcgan_keras.exporters import export_lib
    from dcgan_keras.training import train_lib
    root = tmp_path_factory.mktemp("probe")
    config = TrainConfig(dataset="fashion_mnist", data_dir=_tiny_fashion_mnist(str(root / "data")),
                         image_size=16, channels=1, base_width=8, z_dim=8, batch_size=16,
                         max_steps=2, allow_download=False, num_sample_images=4)
    workdir = str(root / "workdir")
    train_lib.train_and_evaluate(config, workdir)
    export_lib.export_from_workdir(workdir, quantizations=[])
    return workdir, os.path.join(workdir, "export")


def test_probe_runs_every_method_on_the_same_draws(run):
    workdir, export_dir = run
    result = registry.run("svm_probe", registry.EvalContext(workdir=workdir), **PROBE_OPTIONS)
    assert list(result["methods"]) == ["dcgan", "raw_pixels", "kmeans", "random_d",
                                       "supervised_cnn"]
    assert result["dataset"] == "fashion_mnist" and result["training_step"] == 2
    assert result["train_examples"] == result["test_examples"] == 64
    assert [d["seed"] for d in result["draws"]] == [0, 1]
    dims = {name: m["feature_dim"] for name, m in result["methods"].items()}
    # 16x16 D with widths 8, 16: 4x4 grids of 8 + 16 maps; the random D has the same size.
    # The supervised CNN: the same D's 4x4x16 last block under its softmax.
    assert dims == {"dcgan": 384, "raw_pixels": 256, "kmeans": 32, "random_d": 384,
                    "supervised_cnn": 256}
    cnn = result["methods"]["supervised_cnn"]
    assert cnn["chosen_c"] == [] and len(cnn["trials"]) == 2 and len(cnn["trials"][0]) == 1
    assert cnn["val_accuracy_grid"] == [[t["val_accuracy"] for t in d] for d in cnn["trials"]]
    assert result["config"]["trials"] == 1
    assert "random search of 1 trials per draw" in result["summary"]
    for m in result["methods"].values():
        assert len(m["test_accuracies"]) == 2 and set(m["chosen_c"]) <= {1e-2, 1.0}
        assert all(0.0 <= a <= 1.0 for a in m["test_accuracies"])
    # The class is where the bright square is: raw pixels must find it (labels line up).
    assert result["methods"]["raw_pixels"]["mean_accuracy"] > 0.5
    for name in result["methods"]:
        assert name in result["summary"]
    json.dumps(result)  # serialisable


def test_probe_reads_the_exported_features_signature(run, tmp_path):
    workdir, export_dir = run
    broken = tmp_path / "export"
    broken.mkdir()
    (broken / "metadata.json").write_text(open(os.path.join(export_dir, "metadata.json")).read())
    with pytest.raises(FileNotFoundError, match="no discriminator SavedModel"):
        registry.run("svm_probe", registry.EvalContext(workdir=workdir,
                                                       export_dir=str(broken)),
                     **PROBE_OPTIONS)


def test_evaluate_binary_prints_the_table_and_writes_json(run, tmp_path):
    workdir, _ = run
    out = str(tmp_path / "probe.json")
    args = [f"--{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in PROBE_OPTIONS.items()]
    proc = run_binary("dcgan_keras.binaries.evaluate", f"--workdir={workdir}",
                      "--eval=svm_probe", "--baselines=raw_pixels", f"--output_json={out}",
                      *args, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Linear SVM probe (standard features): 2 labels/class x 10 classes" in proc.stdout
    with open(out) as f:
        result = json.load(f)
    assert result["eval"] == "svm_probe" and list(result["methods"]) == ["dcgan", "raw_pixels"]
    assert result["config"]["labels_per_class"] == 2 and result["config"]["val_size"] == 10
    assert result["config"]["solver"] == "newton"  # the default
    # Same data, same draws, same feature function: the in-process run agrees.
    again = registry.run("svm_probe", registry.EvalContext(workdir=workdir),
                         **dict(PROBE_OPTIONS, baselines=["raw_pixels"]))
    for name in ("dcgan", "raw_pixels"):
        assert result["methods"][name]["test_accuracies"] == \
            again["methods"][name]["test_accuracies"]


def test_evaluate_binary_solver_flag(run, tmp_path):
    workdir, _ = run
    out = str(tmp_path / "probe.json")
    proc = run_binary("dcgan_keras.binaries.evaluate", f"--workdir={workdir}",
                      "--eval=svm_probe", "--baselines=", "--svm_solver=liblinear",
                      "--labels_per_class=2", "--val_size=10", "--draws=1",
                      "--max_train_examples=200", "--max_test_examples=50",
                      f"--output_json={out}", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        config = json.load(f)["config"]
    assert config["solver"] == "liblinear" and config["max_iter"] == 10000
    proc = run_binary("dcgan_keras.binaries.evaluate", f"--workdir={workdir}",
                      "--eval=svm_probe", "--svm_solver=sgd", timeout=120)
    assert proc.returncode != 0 and "svm_solver" in proc.stderr
    proc = run_binary("dcgan_keras.binaries.evaluate", f"--workdir={workdir}",
                      "--eval=svm_probe", "--trials=0", timeout=120)
    assert proc.returncode == 2 and "error: trials must be >= 1, got 0" in proc.stderr


def test_evaluate_binary_needs_a_workdir_or_export(tmp_path):
    proc = run_binary("dcgan_keras.binaries.evaluate", "--eval=svm_probe", timeout=120)
    assert proc.returncode == 2 and "pass --workdir" in proc.stderr


def test_registry_names_and_errors():
    assert "svm_probe" in registry.names()
    with pytest.raises(ValueError, match="unknown evaluator 'fdi'; known: svm_probe"):
        registry.get("fdi")
    with pytest.raises(ValueError, match="takes options .* not \\['num_samples'\\]"):
        registry.run("svm_probe", registry.EvalContext(workdir="w"), num_samples=10)
    with pytest.raises(ValueError, match="pass --workdir"):
        registry.EvalContext().resolved_export_dir()
    # Every entry's target resolves to a function taking (context, **options).
    for entry in registry.EVALUATORS.values():
        assert callable(entry.load())


def test_unknown_baseline_is_refused(run):
    with pytest.raises(ValueError, match="unknown baselines \\['sift'\\]"):
        registry.run("svm_probe", registry.EvalContext(workdir=run[0]),
                     **dict(PROBE_OPTIONS, baselines=["sift"]))
