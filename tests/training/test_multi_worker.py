"""Replicas stay identical; two worker processes on 127.0.0.1 train together as one.

The multi-worker test launches the train binary (--strategy=multi_worker, TF_CONFIG per
process) on a tiny config (16x16, batch 16 -> 8 per worker, sync BatchNorm so that 2
workers compute exactly what 1 process computes):
  A. a 2-worker cluster trains steps 0-2; meanwhile a single process trains steps 0-4;
  B. the cluster is restarted and resumes from the chief's checkpoint to step 4.
"""
import contextlib
import glob
import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

from testutil import REPO, make_idx_dataset
from dcgan_keras.models import build_dcgan
from dcgan_keras.workdir import restore_models, weights_fingerprint

TRAIN = "dcgan_keras.binaries.train"
TIMEOUT = 240


def _free_ports(n):
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _flags(workdir, data, **overrides):
    flags = dict(workdir=workdir, dataset="fashion_mnist", data_dir=data, image_size=16,
                 channels=1, base_width=4, z_dim=8, batch_size=16, max_steps=2, log_every=2,
                 checkpoint_every=2, keep_checkpoints=5, num_sample_images=4,
                 sync_batchnorm="true", mixed_precision="none", allow_download="false")
    flags.update(overrides)
    return [f"--{k}={v}" for k, v in flags.items()]


def _start(args, log_prefix, tf_config=None, tmpdir=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    if tmpdir:
        env["TMPDIR"] = tmpdir
    # Logs go to files, not pipes: a worker blocked on a full pipe would stall the other.
    out, err = open(log_prefix + ".out", "w"), open(log_prefix + ".err", "w")
    proc = subprocess.Popen([sys.executable, "-m", TRAIN, *args], stdout=out, stderr=err,
                            cwd=REPO, env=env)
    proc.log_prefix = log_prefix
    return proc


def _wait(procs):
    logs = []
    try:
        for proc in procs:
            proc.wait(timeout=TIMEOUT)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc in procs:
        with open(proc.log_prefix + ".err") as f:
            err = f.read()
        assert proc.returncode == 0, f"{proc.log_prefix} failed:\n{err[-4000:]}"
        logs.append(err)
    return logs


def _start_cluster(tmp_path, run, args):
    ports = _free_ports(2)
    workers = [f"127.0.0.1:{p}" for p in ports]
    procs = []
    for i in range(2):
        scratch = tmp_path / f"tmp_worker{i}"
        scratch.mkdir(exist_ok=True)
        procs.append(_start(args, str(tmp_path / f"{run}_worker{i}"),
                            {"cluster": {"worker": workers},
                             "task": {"type": "worker", "index": i}}, str(scratch)))
    return procs


def _fingerprints(logs):
    found = []
    for i, log in enumerate(logs):
        match = re.search(rf"worker {i} of 2: final weights fingerprint (\w+) at step (\d+)",
                          log)
        assert match, f"worker {i} logged no fingerprint"
        found.append((match.group(1), int(match.group(2))))
    return found


def _checkpoint_fingerprint(workdir, step):
    generator, discriminator, restored_step, _ = restore_models(
        workdir, os.path.join(workdir, "checkpoints", f"ckpt-{step}"))
    assert restored_step == step
    return weights_fingerprint(generator, discriminator)


def _variables(path):
    reader = tf.train.load_checkpoint(path)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if not n.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"))}


def test_replicas_keep_identical_weights_without_sync_batchnorm():
    """Each replica normalises its own batch, but the moving statistics (and all other
    weights) stay equal on every replica, so the checkpoint holds what all replicas hold."""
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest splits the CPU into two logical devices"
    # Not collective ops: a second collective MirroredStrategy over the same devices in
    # this process (test_dcgan has one) would reuse its collective instance keys.
    strategy = tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    with strategy.scope():
        gan = build_dcgan(image_size=16, channels=1, z_dim=8, base_width=4)
        gan.compile()
    real = np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 1)).astype(np.float32)
    real[:8] *= 0.1  # the two replicas' halves have different statistics
    data = strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensor_slices(real).batch(8).repeat())
    gan.fit(data, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)
    moving = 0
    for weight in gan.generator.weights + gan.discriminator.weights:
        first, second = (v.numpy() for v in strategy.experimental_local_results(weight.value))
        np.testing.assert_array_equal(first, second, err_msg=weight.path)
        moving += "moving_mean" in weight.path and not np.allclose(first, 0)
    assert moving >= 3  # the statistics did move


def test_two_workers_train_as_one_and_resume(tmp_path):
    data = make_idx_dataset(str(tmp_path / "data"))  # 64 images: 4 steps per epoch
    workdir, single = str(tmp_path / "cluster"), str(tmp_path / "single")

    # A: the cluster trains to step 2 while one process trains the same run to step 4.
    cluster = _start_cluster(tmp_path, "a", _flags(workdir, data, strategy="multi_worker"))
    reference = _start(_flags(single, data, max_steps=4), str(tmp_path / "single"))
    logs = _wait(cluster + [reference])[:2]
    for i, log in enumerate(logs):
        # Each worker's pipeline yields half of every global batch of 16.
        assert (f"input pipeline {i} of 2: per-replica batches of shape [8, 16, 16, 1] "
                "(global batch 16 over 2 replicas)") in log
    (fp0, step0), (fp1, step1) = _fingerprints(logs)
    assert step0 == step1 == 2
    assert fp0 == fp1, "the workers ended with different weights"
    assert _checkpoint_fingerprint(workdir, 2) == fp0

    # Only the chief wrote into the workdir: its one event file (named by its pid),
    # checkpoints and samples. The non-chief's scratch checkpoints are gone.
    assert sorted(os.listdir(workdir)) == ["checkpoints", "config.json",
                                           os.path.basename(glob.glob(
                                               os.path.join(workdir, "events.*"))[0]),
                                           "samples"]
    events = glob.glob(os.path.join(workdir, "events.*"))
    assert len(events) == 1 and f".{cluster[0].pid}." in os.path.basename(events[0])
    assert os.listdir(tmp_path / "tmp_worker1") == []
    assert sorted(os.listdir(os.path.join(workdir, "samples"))) == ["epoch_0000.png",
                                                                    "step_00000002.png"]

    # B: a restarted cluster resumes from the chief's checkpoint at step 2.
    logs = _wait(_start_cluster(tmp_path, "b", _flags(workdir, data, max_steps=4,
                                                      strategy="multi_worker")))
    for log in logs:
        assert re.search(r"resumed from \S*checkpoints/ckpt-2 at step 2", log)
    (fp0, step0), (fp1, step1) = _fingerprints(logs)
    assert step0 == step1 == 4 and fp0 == fp1
    assert _checkpoint_fingerprint(workdir, 4) == fp0
    assert os.listdir(tmp_path / "tmp_worker1") == []

    # 2 workers x 8 images (stopped and resumed) == 1 process x 16 images: the workers
    # took complementary halves of the same global batches and the same noise.
    two, one = (_variables(os.path.join(w, "checkpoints", "ckpt-4")) for w in (workdir, single))
    assert two.keys() == one.keys() and len(two) > 20
    for name in two:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=2e-5, err_msg=name)
    before = _variables(os.path.join(workdir, "checkpoints", "ckpt-2"))
    g = "g_optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"  # G's projection
    assert not np.allclose(two[g], before[g])  # and training did move the weights
