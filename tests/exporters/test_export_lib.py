"""export_lib: metadata, checksums, safe replacement, and the export binary on a workdir."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from testutil import run_binary

from dcgan_keras.exporters import export_lib
from dcgan_keras.workdir import restore_models


def test_metadata_describes_the_export(export_dir):
    meta = export_lib.load_metadata(export_dir)
    assert meta["z_dim"] == 8 and meta["image_shape"] == [16, 16, 1]
    assert meta["image_value_range"] == [-1.0, 1.0]
    assert meta["feature_size"] == 16 * (8 + 16) and meta["feature_grid"] == 4
    assert meta["feature_layers"] == ["block1_lrelu", "block2_lrelu"]
    assert meta["training_step"] == 7 and meta["dataset"] == "fashion_mnist"
    assert meta["tflite"] == {"float32": "generator.tflite", "float16": "generator_float16.tflite",
                              "int8": "generator_int8.tflite"}
    assert meta["package_version"] and meta["tensorflow_version"] == tf.__version__
    files = meta["files"]
    assert {"generator/saved_model.pb", "discriminator/saved_model.pb", "generator.tflite",
            "generator_float16.tflite", "generator_int8.tflite"} <= set(files)
    assert "metadata.json" not in files
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in files.values())
    assert export_lib.verify(export_dir) == []


def test_verify_finds_changed_missing_and_extra_files(models, tmp_path):
    path = str(tmp_path / "export")
    export_lib.export_models(*models, path, quantizations=["float32"])
    assert export_lib.verify(path) == []
    with open(os.path.join(path, "generator.tflite"), "ab") as f:
        f.write(b"x")
    os.remove(os.path.join(path, "discriminator", "saved_model.pb"))
    open(os.path.join(path, "stray.txt"), "w").close()
    assert export_lib.verify(path) == ["discriminator/saved_model.pb: missing",
                                       "stray.txt: not in metadata.json",
                                       "generator.tflite: sha256 differs"]


def test_reexport_replaces_an_export_but_never_other_files(models, tmp_path):
    path = str(tmp_path / "export")
    export_lib.export_models(*models, path, step=1, quantizations=[])
    open(os.path.join(path, "stray.txt"), "w").close()
    meta = export_lib.export_models(*models, path, step=2, quantizations=[])
    assert meta["training_step"] == 2 and meta["tflite"] == {}
    assert not os.path.exists(os.path.join(path, "stray.txt"))
    assert sorted(os.listdir(tmp_path)) == ["export"]  # no temporary directories left
    other = tmp_path / "notes"
    other.mkdir()
    (other / "paper.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a dcgan_keras export"):
        export_lib.export_models(*models, str(other), quantizations=[])
    assert (other / "paper.txt").read_text() == "keep me"


def test_mismatched_models_are_refused(models):
    from dcgan_keras.models import Discriminator
    with pytest.raises(ValueError, match="generator makes 16x16x1 images but the "
                                         "discriminator reads 32x32x1"):
        export_lib.export_models(models[0], Discriminator(32, 1, 8), "/nonexistent")


def test_export_binary_exports_the_workdir_checkpoint(tiny_workdir, tmp_path):
    export_dir = str(tmp_path / "export")
    proc = run_binary("dcgan_keras.binaries.export", f"--workdir={tiny_workdir}",
                      f"--export_dir={export_dir}", "--tflite=float32")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"exported step 2 to {export_dir}" in proc.stdout
    meta = export_lib.load_metadata(export_dir)
    assert meta["training_step"] == 2 and meta["dataset"] == "fashion_mnist"
    assert meta["checkpoint"].endswith("ckpt-2") and list(meta["tflite"]) == ["float32"]
    g, d, _, _ = restore_models(tiny_workdir)
    z = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    loaded = tf.saved_model.load(os.path.join(export_dir, "generator"))
    np.testing.assert_allclose(loaded.signatures["serving_default"](z=z)["images"],
                               g(z, training=False), atol=1e-5, rtol=0)
    with open(os.path.join(export_dir, "metadata.json")) as f:
        assert json.load(f) == meta


def test_export_binary_explains_bad_input(tmp_path):
    proc = run_binary("dcgan_keras.binaries.export", f"--workdir={tmp_path}")
    assert proc.returncode == 2
    assert "is not a training workdir" in proc.stderr and "Traceback" not in proc.stderr
