"""The fid/kid/is/pr evaluators on image files, a workdir and an export-less run."""
import numpy as np
import pytest

from testutil import make_idx_dataset
from dcgan_keras.config import TrainConfig
from dcgan_keras.evaluation import classifier, quality_eval, registry
from dcgan_keras.training import train_lib


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("qeval")
    data = make_idx_dataset(str(root / "data"), num_train=96, num_test=48)
    classifier.train_classifier("fashion_mnist", str(root / "clf"), image_size=16, channels=1,
                                epochs=2, batch_size=32, data_dir=data, allow_download=False)
    config = TrainConfig(dataset="fashion_mnist", data_dir=data, image_size=16, channels=1,
                         base_width=4, z_dim=8, batch_size=32, max_steps=3, ema_decay=0.9,
                         allow_download=False)
    train_lib.train_and_evaluate(config, str(root / "run"))
    return root, data


def test_identical_image_files_score_perfectly(setup, tmp_path):
    root, _ = setup
    images = np.random.default_rng(0).integers(0, 255, (60, 16, 16)).astype(np.uint8)
    np.save(tmp_path / "a.npy", images)
    np.savez(tmp_path / "b.npz", images=images.astype(np.float32) / 127.5 - 1)
    out = quality_eval.evaluate(registry.EvalContext(), feature_net=str(root / "clf"),
                                num_samples=60, images=str(tmp_path / "a.npy"),
                                reference_images=str(tmp_path / "b.npz"))
    assert out["fid"] == pytest.approx(0.0, abs=1e-3)
    assert out["precision"] == 1.0 and out["recall"] == 1.0
    assert out["num_fake"] == 60 and "FID" in out["summary"]


def test_workdir_generator_and_ema_against_the_dataset(setup, monkeypatch, tmp_path):
    root, _ = setup
    monkeypatch.setenv("DCGAN_KERAS_CACHE", str(tmp_path))
    context = registry.EvalContext(workdir=str(root / "run"))
    plain = quality_eval.evaluate(context, metrics="fid,kid", feature_net=str(root / "clf"),
                                  num_samples=40)
    ema = quality_eval.evaluate(context, metrics="fid,kid", feature_net=str(root / "clf"),
                                num_samples=40, generator="ema")
    assert plain["reference"] == "fashion_mnist/test" and plain["num_real"] == 40
    assert plain["fid"] > 0 and ema["fid"] > 0 and plain["fid"] != ema["fid"]
    assert set(plain) >= {"fid", "kid", "kid_std"} and "is" not in plain


def test_bad_inputs_are_explained(setup, tmp_path):
    root, _ = setup
    np.save(tmp_path / "bad.npy", np.zeros((4, 16), np.float32))
    with pytest.raises(ValueError, match="expected images"):
        quality_eval.load_images(str(tmp_path / "bad.npy"), 16, 1)
    np.save(tmp_path / "range.npy", np.full((4, 16, 16), 7.0, np.float32))
    with pytest.raises(ValueError, match=r"must be in \[-1, 1\]"):
        quality_eval.load_images(str(tmp_path / "range.npy"), 16, 1)
    structured = np.zeros(4, dtype=[("images", np.uint8, (16, 16, 1)), ("z", np.float32, (8,))])
    np.save(tmp_path / "samples.npy", structured)  # the sample binary's .npy layout
    assert quality_eval.load_images(str(tmp_path / "samples.npy"), 16, 1).shape == (4, 16, 16, 1)
    with pytest.raises(FileNotFoundError, match="neither a folder"):
        quality_eval.load_images(str(tmp_path / "missing.npy"), 16, 1)
    np.save(tmp_path / "ok.npy", np.zeros((4, 16, 16), np.float32))
    with pytest.raises(ValueError, match="no reference"):
        quality_eval.evaluate(registry.EvalContext(), feature_net=str(root / "clf"),
                              images=str(tmp_path / "ok.npy"))


def test_eval_flag_resolves_metric_lists():
    assert registry.resolve("fid,kid") == ("sample_quality", {"metrics": "fid,kid"})
    assert registry.resolve("svm_probe") == ("svm_probe", {})
    with pytest.raises(ValueError, match="unknown evaluator"):
        registry.resolve("swd")
    with pytest.raises(ValueError, match="comma-separated list of metrics"):
        registry.resolve("fid,svm_probe")


def test_evaluate_binary_scores_image_files(setup, tmp_path):
    from testutil import run_binary
    root, _ = setup
    images = np.random.default_rng(1).integers(0, 255, (50, 16, 16)).astype(np.uint8)
    np.save(tmp_path / "fake.npy", images)
    np.save(tmp_path / "real.npy", images[::-1])
    out = tmp_path / "scores.json"
    result = run_binary("dcgan_keras.binaries.evaluate", "--eval=fid,pr",
                        f"--feature_net={root / 'clf'}", f"--images={tmp_path / 'fake.npy'}",
                        f"--reference_images={tmp_path / 'real.npy'}", "--num_samples=50",
                        f"--output_json={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    import json
    scores = json.load(open(out))
    assert scores["fid"] == pytest.approx(0.0, abs=1e-3) and scores["recall"] == 1.0
    assert "FID" in result.stdout and "precision" in result.stdout
    bad = run_binary("dcgan_keras.binaries.evaluate", "--eval=fid,bogus",
                     f"--images={tmp_path / 'fake.npy'}")
    assert bad.returncode != 0 and "comma-separated list of metrics" in bad.stderr
