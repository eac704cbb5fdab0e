"""Feature networks, the domain classifier, cached reference features, and evaluation /
EMA / best checkpoint during training."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from testutil import make_idx_dataset
from dcgan_keras.config import TrainConfig
from dcgan_keras.evaluation import classifier, feature_nets, sample_quality
from dcgan_keras.training import train_lib
from dcgan_keras.workdir import restore_models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    data = make_idx_dataset(str(root / "data"), num_train=128, num_test=64)
    info = classifier.train_classifier("fashion_mnist", str(root / "clf"), image_size=16,
                                       channels=1, epochs=6, batch_size=32, data_dir=data,
                                       allow_download=False)
    return root, data, info


def test_classifier_learns_and_saves_its_accuracy(tiny):
    root, _, info = tiny
    saved = json.load(open(root / "clf" / "classifier.json"))
    assert saved == info and saved["test_examples"] == 64
    assert saved["test_accuracy"] > 0.3  # 10 classes, bright bands: far above chance


def test_classifier_feature_net_shapes_and_conversion(tiny):
    root, _, _ = tiny
    net = feature_nets.load(str(root / "clf"))
    assert (net.image_size, net.channels) == (16, 1)
    images = np.random.default_rng(0).uniform(-1, 1, (7, 32, 32, 3)).astype("float32")
    features, probs = net(images, batch_size=3)  # resized and converted to gray
    assert features.shape == (7, 128) and probs.shape == (7, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    again, _ = net(images)
    np.testing.assert_allclose(features, again, atol=1e-5)  # inference mode: no randomness
    with pytest.raises(FileNotFoundError, match="train_classifier"):
        feature_nets.load(str(root / "nothing"))


def test_inception_without_weights_says_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DCGAN_KERAS_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(FileNotFoundError) as e:
        feature_nets.load("inception")
    assert feature_nets.INCEPTION_URL in str(e.value)
    assert "train_classifier" in str(e.value) and "never used" in str(e.value)


def test_reference_features_are_cached(tiny, monkeypatch, tmp_path):
    root, data, _ = tiny
    monkeypatch.setenv("DCGAN_KERAS_CACHE", str(tmp_path))
    net = feature_nets.load(str(root / "clf"))
    args = dict(dataset="fashion_mnist", split="test", image_size=16, channels=1,
                num_examples=50, data_dir=data, allow_download=False)
    first = sample_quality.reference_features(net, **args)
    files = glob.glob(str(tmp_path / "reference" / "*.npz"))
    assert first.shape == (50, 128) and len(files) == 1
    # A second call reads the cache: prove it by planting known values in it.
    np.savez(files[0], features=np.ones((50, 128)))
    np.testing.assert_array_equal(sample_quality.reference_features(net, **args), 1.0)


def test_score_identical_and_shifted_sets():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 8))
    same = sample_quality.score(real, real, which=("fid", "pr"))
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    shifted = sample_quality.score(real + 3.0, real, which=("fid", "kid"))
    assert shifted["fid"] == pytest.approx(8 * 9.0, rel=1e-6)  # |m|^2, same covariance
    assert shifted["kid"] > 0.1
    with pytest.raises(ValueError, match="unknown metrics"):
        sample_quality.score(real, real, which=("fid", "swd"))


def test_training_evaluates_keeps_best_and_ema(tiny, monkeypatch, tmp_path):
    root, data, _ = tiny
    monkeypatch.setenv("DCGAN_KERAS_CACHE", str(tmp_path / "cache"))
    workdir = str(tmp_path / "run")
    config = TrainConfig(dataset="fashion_mnist", data_dir=data, image_size=16, channels=1,
                         base_width=4, z_dim=8, batch_size=32, epochs=3, log_every=2,
                         allow_download=False, eval_every_epochs=1, eval_num_samples=40,
                         eval_feature_net=str(root / "clf"), ema_decay=0.5)
    result = train_lib.train_and_evaluate(config, workdir)
    assert {"fid", "kid", "fid_ema", "kid_ema"} <= set(result)
    best = json.load(open(os.path.join(workdir, "best.json")))
    assert best["step"] in (4, 8, 12) and best["fid"] > 0
    path = tf.train.latest_checkpoint(os.path.join(workdir, "best_checkpoint"))
    assert path.endswith(f"ckpt-{best['step']}")
    g_best, _, step, _ = restore_models(workdir, "best")
    assert step == best["step"]
    g_ema, _, _, _ = restore_models(workdir, generator_key="ema_generator")
    g, _, _, _ = restore_models(workdir)
    assert not np.allclose(g_ema.get_weights()[0], g.get_weights()[0])
    # EMA weights are the EMA of G's: with decay 0.5 they lie near G's after 12 steps.
    assert np.abs(g_ema.get_weights()[0] - g.get_weights()[0]).mean() < 0.02
    assert os.path.exists(os.path.join(workdir, "samples", "ema_epoch_0003.png"))
    events = glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
    tags = {v.tag for e in events for ev in tf.compat.v1.train.summary_iterator(e)
            for v in ev.summary.value}
    assert {"eval/fid", "eval/kid", "eval/fid_ema", "samples_ema"} <= tags
