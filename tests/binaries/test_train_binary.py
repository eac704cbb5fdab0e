"""The train binary end to end on a tiny config: every workdir artefact, resume, bad flags."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from testutil import REPO, make_idx_dataset, run_binary
from dcgan_keras.utils.images import read_png

TRAIN = "dcgan_keras.binaries.train"


def _tiny_flags(workdir, data_dir, **overrides):
    flags = dict(workdir=workdir, dataset="fashion_mnist", data_dir=data_dir, image_size=16,
                 channels=1, base_width=4, z_dim=8, batch_size=16, epochs=2, log_every=2,
                 checkpoint_every=2, keep_checkpoints=2, num_sample_images=9,
                 allow_download="false")
    flags.update(overrides)
    return [f"--{k}={v}" for k, v in flags.items()]


def _event_tags(workdir):
    scalars, images = {}, set()
    for path in glob.glob(os.path.join(workdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "samples":
                    images.add(event.step)
                else:
                    scalars.setdefault(value.tag, []).append(
                        (event.step, float(tf.make_ndarray(value.tensor))))
    return scalars, images


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = make_idx_dataset(str(root / "data"))  # 64 train images -> 4 steps per epoch
    workdir = str(root / "run")
    result = run_binary(TRAIN, *_tiny_flags(workdir, data))
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, data, result


def test_workdir_has_every_artefact(trained):
    workdir, _, result = trained
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert config["image_size"] == 16 and config["learning_rate"] == 2e-4
    assert config["beta1"] == 0.5 and config["batch_size"] == 16
    # Progress lines with step, losses and throughput.
    assert "step 8/8" in result.stdout and "img/s" in result.stdout
    assert "d_loss" in result.stdout and "D(G(z))" in result.stdout
    # One PNG grid per epoch (and the initial one), 3x3 tiles of 16x16 plus padding.
    samples = sorted(os.listdir(os.path.join(workdir, "samples")))
    assert samples == ["epoch_0000.png", "epoch_0001.png", "epoch_0002.png"]
    grid = read_png(os.path.join(workdir, "samples", "epoch_0002.png"))
    assert grid.shape == (3 * 18 + 2, 3 * 18 + 2, 1)
    # TensorBoard: every scalar at every log step, and sample images once per epoch.
    scalars, image_steps = _event_tags(workdir)
    for tag in ("d_loss", "g_loss", "d_x", "d_g_z", "images_per_sec"):
        assert [s for s, _ in scalars[f"train/{tag}"]] == [2, 4, 6, 8], tag
    assert all(0 < v < 1 for _, v in scalars["train/d_x"])
    assert {4, 8} <= image_steps
    # The last two checkpoints are kept, with both nets, both optimizers, the step, the
    # data position and the RNG seed.
    ckpt_dir = os.path.join(workdir, "checkpoints")
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-8")
    assert sorted(glob.glob(os.path.join(ckpt_dir, "*.index"))) == [
        os.path.join(ckpt_dir, "ckpt-6.index"), os.path.join(ckpt_dir, "ckpt-8.index")]
    reader = tf.train.load_checkpoint(os.path.join(ckpt_dir, "ckpt-8"))
    names = list(reader.get_variable_to_shape_map())
    for prefix in ("generator/", "discriminator/", "g_optimizer/", "d_optimizer/"):
        assert any(n.startswith(prefix) for n in names), prefix
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 8
    assert reader.get_tensor("examples_seen/.ATTRIBUTES/VARIABLE_VALUE") == 8 * 16
    assert reader.get_tensor("rng_seed/.ATTRIBUTES/VARIABLE_VALUE") == 0


def test_same_command_resumes(trained, tmp_path):
    workdir, data, _ = trained
    again = run_binary(TRAIN, *_tiny_flags(workdir, data, epochs=3))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stderr and "step 12/12" in again.stdout
    assert "step 2/12" not in again.stdout  # it did not start over
    assert os.path.exists(os.path.join(workdir, "samples", "epoch_0003.png"))
    # A finished run re-run does no work.
    done = run_binary(TRAIN, *_tiny_flags(workdir, data, epochs=3))
    assert done.returncode == 0 and "trained to step 12" in done.stdout


def test_changed_architecture_on_resume_is_refused(trained):
    workdir, data, _ = trained
    result = run_binary(TRAIN, *_tiny_flags(workdir, data, base_width=8))
    assert result.returncode != 0
    assert "base_width: workdir has 4, flags say 8" in result.stderr


def test_missing_workdir_and_missing_data(tmp_path):
    result = run_binary(TRAIN, "--dataset=fashion_mnist")
    assert result.returncode != 0 and "--workdir" in result.stderr
    result = run_binary(TRAIN, f"--workdir={tmp_path}/w", "--dataset=folder",
                        f"--data_dir={tmp_path}/no_such_dir")
    assert result.returncode != 0
    assert "Ways to provide it" in result.stderr and "not a directory" in result.stderr


def _variables(checkpoint):
    reader = tf.train.load_checkpoint(checkpoint)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if not n.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"))}


def test_exact_resume(tmp_path):
    """Stopped at step 3 and resumed to 6 == never stopped, with op determinism."""
    data = make_idx_dataset(str(tmp_path / "data"))
    common = dict(deterministic="true", checkpoint_every=100, epochs=1, keep_checkpoints=5)
    straight = str(tmp_path / "straight")
    stopped = str(tmp_path / "stopped")
    assert run_binary(TRAIN, *_tiny_flags(straight, data, max_steps=6, **common)).returncode == 0
    assert run_binary(TRAIN, *_tiny_flags(stopped, data, max_steps=3, **common)).returncode == 0
    assert run_binary(TRAIN, *_tiny_flags(stopped, data, max_steps=6, **common)).returncode == 0
    a = _variables(os.path.join(straight, "checkpoints", "ckpt-6"))
    b = _variables(os.path.join(stopped, "checkpoints", "ckpt-6"))
    assert a.keys() == b.keys() and len(a) > 20
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7, err_msg=name)
    # And the weights did change between the two halves (the test can fail).
    c = _variables(os.path.join(stopped, "checkpoints", "ckpt-3"))
    g = "g_optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"  # G's projection
    assert not np.allclose(a[g], c[g])


def test_cache_images_trains_from_memory_and_resumes(tmp_path):
    """--cache_images: the split decoded once; a stopped run resumes from the same cache
    position, and the weights match an uncached run up to the cache's uint8 rounding."""
    data = make_idx_dataset(str(tmp_path / "data"))
    common = dict(deterministic="true", checkpoint_every=100, epochs=1, keep_checkpoints=5)
    cached, plain = str(tmp_path / "cached"), str(tmp_path / "plain")
    first = run_binary(TRAIN, *_tiny_flags(cached, data, max_steps=2, cache_images="true",
                                           **common))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "--cache_images: 64 images decoded into memory" in first.stderr
    resumed = run_binary(TRAIN, *_tiny_flags(cached, data, max_steps=4, cache_images="true",
                                             **common))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_binary(TRAIN, *_tiny_flags(plain, data, max_steps=4, **common)).returncode == 0
    a = _variables(os.path.join(cached, "checkpoints", "ckpt-4"))
    b = _variables(os.path.join(plain, "checkpoints", "ckpt-4"))
    g = "g_optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"
    two = _variables(os.path.join(cached, "checkpoints", "ckpt-2"))[g]
    moved = np.abs(a[g] - two).mean()  # what steps 3-4 changed
    assert moved > 1e-5
    # Adam steps are ~lr each whatever the gradient, so compare with what the steps moved:
    # the two runs differ by a fraction of it (measured ~0.12; other images: ~1).
    assert np.abs(a[g] - b[g]).mean() < 0.3 * moved


def test_steps_per_execution_trains_the_same_steps(tmp_path):
    """--steps_per_execution=2 runs two steps per call into the graph: the same weights
    as one step per call; a value that does not divide the epoch is refused."""
    data = make_idx_dataset(str(tmp_path / "data"))
    common = dict(deterministic="true", checkpoint_every=100, epochs=1, max_steps=6,
                  keep_checkpoints=5)
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    assert run_binary(TRAIN, *_tiny_flags(one, data, **common)).returncode == 0
    result = run_binary(TRAIN, *_tiny_flags(two, data, steps_per_execution=2, **common))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 6/6" in result.stdout
    a = _variables(os.path.join(one, "checkpoints", "ckpt-6"))
    b = _variables(os.path.join(two, "checkpoints", "ckpt-6"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7, err_msg=name)
    bad = run_binary(TRAIN, *_tiny_flags(str(tmp_path / "bad"), data, steps_per_execution=3))
    assert bad.returncode != 0
    assert "steps_per_execution 3 must divide the 4 steps of an epoch" in bad.stderr


def test_quiet_startup_shows_our_message_first(tmp_path):
    """TensorFlow's native start-up lines (oneDNN banner, "failed call to cuInit" on a
    CPU-only host) are held back unless --verbosity asks for them."""
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    result = subprocess.run(
        [sys.executable, "-m", TRAIN, f"--workdir={tmp_path}/w", "--dataset=fashion_mnist",
         "--image_size=48"], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].startswith("error: image_size must be a power"), \
        result.stderr[:2000]
    for noise in ("I0000", "E0000", "W0000", "oneDNN", "cuInit"):
        assert noise not in result.stderr, noise
