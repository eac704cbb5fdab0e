"""Never lose a run: refusal instead of restart, NaN guard and rollback, signals, kills."""
import glob
import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from testutil import REPO, make_idx_dataset, run_binary
from dcgan_keras.config import TrainConfig
from dcgan_keras.models import build_dcgan
from dcgan_keras.training import callbacks, checkpoints, reliability, train_lib

TRAIN = "dcgan_keras.binaries.train"
TINY = dict(image_size=16, channels=1, z_dim=8, base_width=4)


def _flags(workdir, data, **overrides):
    flags = dict(workdir=workdir, dataset="fashion_mnist", data_dir=data, image_size=16,
                 channels=1, base_width=4, z_dim=8, batch_size=16, epochs=1, log_every=1,
                 checkpoint_every=2, keep_checkpoints=3, num_sample_images=4,
                 allow_download="false", mixed_precision="none")
    flags.update(overrides)
    return [f"--{k}={v}" for k, v in flags.items()]


def _gan(**kwargs):
    gan = build_dcgan(**TINY, **kwargs)
    gan.compile()
    return gan


def _variables(path):
    reader = tf.train.load_checkpoint(path)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if not n.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"))}


def test_a_checkpoint_of_another_structure_is_refused_not_skipped(tmp_path):
    ckpt = checkpoints.Checkpointer(str(tmp_path), _gan(), max_to_keep=3)
    for step in (10, 15, 20):
        ckpt.save(step, step * 16)
    with_ema = _gan(ema_decay=0.99)
    other = checkpoints.Checkpointer(str(tmp_path), with_ema,
                                     extra={"ema_generator": with_ema.ema_generator})
    with pytest.raises(checkpoints.CheckpointMismatchError) as error:
        other.restore_latest()
    message = str(error.value)
    assert "ckpt-20" in message and "ema_generator" in message and "--ema_decay" in message
    assert int(with_ema.step.numpy()) == 0  # nothing restored from an older one either
    wider = checkpoints.Checkpointer(str(tmp_path), _gan_wider())
    with pytest.raises(checkpoints.CheckpointMismatchError, match="shapes differ"):
        wider.restore_latest()


def _gan_wider():
    gan = build_dcgan(image_size=16, channels=1, z_dim=8, base_width=8)
    gan.compile()
    return gan


def test_every_checkpoint_damaged_is_refused(tmp_path):
    ckpt = checkpoints.Checkpointer(str(tmp_path), _gan())
    ckpt.save(1, 16)
    for name in glob.glob(str(tmp_path / "ckpt-1.*")):
        open(name, "wb").write(b"garbage")
    with pytest.raises(checkpoints.CheckpointMismatchError, match="every checkpoint .* is "
                                                                  "unreadable"):
        checkpoints.Checkpointer(str(tmp_path), _gan()).restore_latest()


def test_resume_from_the_workdir_alone_and_refuse_an_ema_change(tmp_path):
    data = make_idx_dataset(str(tmp_path / "data"))  # 64 images: 4 steps an epoch
    workdir = str(tmp_path / "run")
    assert run_binary(TRAIN, *_flags(workdir, data, max_steps=2)).returncode == 0
    again = run_binary(TRAIN, f"--workdir={workdir}", "--max_steps=4", "--log_every=2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "changed: max_steps 2 -> 4" in again.stderr
    assert "resumed from" in again.stderr and "trained to step 4" in again.stdout
    before = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
    refused = run_binary(TRAIN, f"--workdir={workdir}", "--ema_decay=0.99", "--max_steps=6")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "ema_decay: workdir has 0.0, flags say 0.99" in refused.stderr
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == before
    open(os.path.join(workdir, "config.json"), "w").write("{not json")
    corrupt = run_binary(TRAIN, f"--workdir={workdir}")
    assert corrupt.returncode != 0 and "config.json is corrupt" in corrupt.stderr


class _PoisonOnce(keras.callbacks.Callback):
    """Writes NaN into a variable (default: a D kernel) after step `at`, once."""

    def __init__(self, at, variable=lambda gan: gan.discriminator.trainable_weights[0]):
        super().__init__()
        self.at, self.variable, self.done = at, variable, False

    def on_train_batch_end(self, batch, logs=None):
        if not self.done and int(self.model.step.numpy()) == self.at:
            variable = self.variable(self.model)
            variable.assign(tf.fill(variable.shape, np.nan))
            self.done = True


def _state(gan):
    """Every variable of a DCGAN and its optimizers (BatchNorm statistics, slots, step)."""
    return gan.weights + gan.d_optimizer.variables + gan.g_optimizer.variables


class _StateAtStart(keras.callbacks.Callback):
    """(step, values of _state) as each `fit` begins."""

    def __init__(self):
        super().__init__()
        self.states = []

    def on_train_begin(self, logs=None):
        self.states.append((int(self.model.step.numpy()),
                            [v.numpy().copy() for v in _state(self.model)]))


def _config(data, **overrides):
    values = dict(dataset="fashion_mnist", data_dir=data, image_size=16, channels=1,
                  base_width=4, z_dim=8, batch_size=16, max_steps=8, checkpoint_every=2,
                  log_every=1, allow_download=False, mixed_precision="none",
                  keep_checkpoints=10)
    values.update(overrides)
    return TrainConfig(**values)


def _assert_finite_checkpoints(directory):
    for path in glob.glob(os.path.join(directory, "*.index")):
        for name, value in _variables(path[:-len(".index")]).items():
            if value.dtype.kind == "f":
                assert np.isfinite(value).all(), (path, name)


def test_nan_stops_or_rolls_back_and_never_reaches_a_checkpoint(tmp_path):
    data = make_idx_dataset(str(tmp_path / "data"))  # 64 images: 4 steps an epoch
    with pytest.raises(callbacks.NonFiniteError, match="non-finite .*d_loss=nan.* at step 4"):
        train_lib.train_and_evaluate(_config(data), str(tmp_path / "stop"),
                                     extra_callbacks=[_PoisonOnce(3)])
    saved = glob.glob(str(tmp_path / "stop" / "checkpoints" / "*.index"))
    assert sorted(os.path.basename(p) for p in saved) == ["ckpt-2.index"]
    workdir = str(tmp_path / "rollback")
    starts = _StateAtStart()
    result = train_lib.train_and_evaluate(_config(data, on_nan="rollback"), workdir,
                                          extra_callbacks=[_PoisonOnce(3), starts])
    assert result["step"] == 8 and result["rollbacks"] == 1
    assert reliability.learning_rate(result["gan"]) == pytest.approx(1e-4)  # halved
    _assert_finite_checkpoints(os.path.join(workdir, "checkpoints"))
    # The fits: from 0 (NaN at step 4), then from the rollback to ckpt-2: the rest of
    # epoch 1, and epoch 2.
    assert [step for step, _ in starts.states] == [0, 2, 4]
    # Right after the rollback every variable holds ckpt-2's value (read here by TF's own
    # tf.train.Checkpoint into a fresh model), but the learning rate, which is halved.
    fresh = _gan()
    tf.train.Checkpoint(generator=fresh.generator, discriminator=fresh.discriminator,
                        g_optimizer=fresh.g_optimizer, d_optimizer=fresh.d_optimizer,
                        step=fresh.step).read(os.path.join(workdir, "checkpoints", "ckpt-2")
                                              ).assert_existing_objects_matched()
    assert int(fresh.step.numpy()) == 2
    for variable, value in zip(_state(fresh), starts.states[1][1]):
        if variable.path.endswith("learning_rate"):
            assert value == pytest.approx(variable.numpy() / 2)
        else:
            np.testing.assert_array_equal(value, variable.numpy(), err_msg=variable.path)


def test_a_nan_only_in_a_batchnorm_statistic_is_never_checkpointed(tmp_path):
    """G's moving variance is not in the training loss (BatchNorm normalises with the
    batch's statistics while training): the losses stay finite, the NaN guard lets the
    step through, and only Checkpoint's check of every variable keeps the NaN out."""
    data = make_idx_dataset(str(tmp_path / "data"))

    def poison():
        return _PoisonOnce(3, lambda gan: gan.generator.get_layer("project_bn").moving_variance)

    # The guard runs first at a step end: this message (not "non-finite d_loss=...") means
    # the losses of step 4 were finite.
    with pytest.raises(callbacks.NonFiniteError, match=r"not writing a checkpoint at step 4: "
                       r"1 variables are NaN/Inf \(generator/project_bn/moving_variance\)"):
        train_lib.train_and_evaluate(_config(data), str(tmp_path / "stop"),
                                     extra_callbacks=[poison()])
    saved = glob.glob(str(tmp_path / "stop" / "checkpoints" / "*.index"))
    assert sorted(os.path.basename(p) for p in saved) == ["ckpt-2.index"]
    workdir = str(tmp_path / "rollback")
    result = train_lib.train_and_evaluate(_config(data, on_nan="rollback"), workdir,
                                          extra_callbacks=[poison()])
    assert result["step"] == 8 and result["rollbacks"] == 1
    _assert_finite_checkpoints(os.path.join(workdir, "checkpoints"))


def _start(args, env_extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               PYTHONUNBUFFERED="1", **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-m", TRAIN, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _read_to_step(proc, step, timeout=120):
    """Reads the output until a progress line `step k/..` with k >= step (or the end);
    returns (what was read, whether that step was reached)."""
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= step:
            return "".join(seen), True
    return "".join(seen), False


def _wait_for_step(proc, step, timeout=120):
    text, reached = _read_to_step(proc, step, timeout)
    assert reached, "no progress to step %d:\n%s" % (step, text[-3000:])
    return text


@pytest.fixture
def op_determinism():
    """Leaves TensorFlow's op determinism as it was (a --deterministic run enables it for
    the whole process; only the private module can turn it off again)."""
    from tensorflow.python.framework import config as tf_config
    enabled = tf_config.is_op_determinism_enabled()
    yield
    if not enabled:
        tf_config.disable_op_determinism()


class _SignalAt(keras.callbacks.Callback):
    """Sends `signum` to this process `times` times as the step that makes the model's
    step `at` begins: the run must stop right after that step."""

    def __init__(self, signum, at, times=1):
        super().__init__()
        self.signum, self.at, self.times, self.sent = signum, at, times, False

    def on_train_batch_begin(self, batch, logs=None):
        if not self.sent and int(self.model.step.numpy()) == self.at - 1:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)  # Python runs the handler right away
            self.sent = True


class _Handler:
    """A signal handler that records the signals it gets."""

    def __init__(self):
        self.calls = []

    def __call__(self, signum, frame):
        self.calls.append(signum)


def test_a_signal_stops_the_run_at_its_step_and_the_run_resumes_exactly(tmp_path,
                                                                        op_determinism):
    data = make_idx_dataset(str(tmp_path / "data"))  # 64 images: 4 steps an epoch
    config = _config(data, deterministic=True, max_steps=8, checkpoint_every=1000)
    straight = train_lib.train_and_evaluate(config, str(tmp_path / "straight"))
    assert straight["step"] == 8 and straight["interrupted"] is None
    previous = {signal.SIGTERM: _Handler(), signal.SIGINT: _Handler()}
    originals = {signum: signal.signal(signum, handler) for signum, handler in previous.items()}
    try:
        workdir = str(tmp_path / "stopped")
        # Two SIGTERMs during step 3 (mid-epoch): the first stops the run after the step,
        # the second goes to the handler that was there before.
        result = train_lib.train_and_evaluate(
            config, workdir, extra_callbacks=[_SignalAt(signal.SIGTERM, 3, times=2)])
        restored = {signum: signal.getsignal(signum) for signum in previous}
    finally:
        for signum, handler in originals.items():
            signal.signal(signum, handler)
    assert result["interrupted"] == signal.SIGTERM and result["step"] == 3
    assert restored == previous  # both handlers back after fit
    assert previous[signal.SIGTERM].calls == [signal.SIGTERM]  # the second one fell through
    assert previous[signal.SIGINT].calls == []
    directory = os.path.join(workdir, "checkpoints")
    assert sorted(os.listdir(directory)) == ["checkpoint", "ckpt-3.data-00000-of-00001",
                                             "ckpt-3.index"]  # written for the signal
    reader = tf.train.load_checkpoint(os.path.join(directory, "ckpt-3"))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 3
    assert reader.get_tensor("examples_seen/.ATTRIBUTES/VARIABLE_VALUE") == 3 * 16
    # The same call resumes at step 3 and ends where the unbroken run ends, bit for bit.
    resumed = train_lib.train_and_evaluate(config, workdir)
    assert resumed["step"] == 8 and resumed["interrupted"] is None
    a = _variables(os.path.join(tmp_path, "straight", "checkpoints", "ckpt-8"))
    b = _variables(os.path.join(directory, "ckpt-8"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_writes_a_checkpoint_at_the_current_step_and_exits(tmp_path, signum):
    """The binary: exit code 128 + signum, no traceback, the checkpoint at the step it
    names (what the run does at a signal is tested in-process above)."""
    data = make_idx_dataset(str(tmp_path / "data"))
    workdir = str(tmp_path / "run")
    proc = _start(_flags(workdir, data, epochs=1000, checkpoint_every=1000))
    _wait_for_step(proc, 3)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, out[-3000:]
    assert "Traceback" not in out
    step = int(out.split("stopped by signal")[1].split("at step ")[1].split(";")[0])
    assert step >= 3
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith(
        f"ckpt-{step}")


def test_killed_at_random_moments_resumes_to_the_same_weights(tmp_path):
    """SIGKILL (no chance to clean up) at random times, checkpoint writes included; the
    same command resumes each time and ends where an unbroken run ends."""
    data = make_idx_dataset(str(tmp_path / "data"))
    common = dict(deterministic="true", max_steps=16, checkpoint_every=1, keep_checkpoints=2)
    straight = str(tmp_path / "straight")
    assert run_binary(TRAIN, *_flags(straight, data, **common)).returncode == 0
    workdir = str(tmp_path / "killed")
    rng = random.Random(0)
    kills = 0
    for attempt in range(12):
        proc = _start(_flags(workdir, data, **common))
        ckpt = os.path.join(workdir, "checkpoints")
        before = tf.train.latest_checkpoint(ckpt) if os.path.isdir(ckpt) else None
        # Wait for a random one of the next steps (or the end), then kill a random moment
        # later: inside the next step or its checkpoint write (one per step).
        done = 0 if before is None else int(before.split("-")[-1])
        text, _ = _read_to_step(proc, min(done + rng.randint(1, 3), 15))
        time.sleep(rng.uniform(0.0, 0.15))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        out = text + proc.communicate(timeout=120)[0]
        if proc.returncode == 0:
            assert "trained to step 16" in out
            break
        assert proc.returncode == -signal.SIGKILL, out[-3000:]
    else:
        pytest.fail("the run never finished")
    assert kills >= 3
    a = _variables(os.path.join(straight, "checkpoints", "ckpt-16"))
    b = _variables(os.path.join(workdir, "checkpoints", "ckpt-16"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7, err_msg=name)


def test_train_resume_and_export_with_a_workdir_on_another_file_system(tmp_path):
    """ram:// (TensorFlow's in-memory file system) stands for gs:// and hdfs://: every
    workdir file goes through tf.io.gfile."""
    from dcgan_keras.exporters import export_lib
    data = make_idx_dataset(str(tmp_path / "data"))
    workdir = f"ram://reliability_{os.getpid()}/run"
    first = train_lib.train_and_evaluate(_config(data, max_steps=2, checkpoint_every=1),
                                         workdir)
    assert first["step"] == 2
    second = train_lib.train_and_evaluate(_config(data, max_steps=4), workdir)
    assert second["step"] == 4
    gfile = tf.io.gfile
    assert gfile.exists(workdir + "/config.json")
    assert gfile.exists(workdir + "/samples/epoch_0000.png")
    assert tf.train.latest_checkpoint(workdir + "/checkpoints").endswith("ckpt-4")
    assert gfile.glob(workdir + "/events.out.tfevents.*")
    assert not [p for p in gfile.glob(workdir + "/**") if ".tmp-" in p]  # no temp files left
    export_dir = workdir + "/export"
    meta = export_lib.export_from_workdir(workdir, export_dir, quantizations=("float32",))
    assert meta["training_step"] == 4
    assert export_lib.verify(export_dir) == []
    generator = tf.saved_model.load(export_dir + "/generator")
    images = generator.signatures["serving_default"](z=tf.zeros([2, 8]))
    assert list(images.values())[0].shape == (2, 16, 16, 1)


def test_an_unwritable_workdir_is_refused_before_any_work(tmp_path):
    data = make_idx_dataset(str(tmp_path / "data"))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = run_binary(TRAIN, *_flags(str(blocker / "run"), data, max_steps=2))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"cannot write into {blocker / 'run'}" in result.stderr


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    data = make_idx_dataset(str(tmp_path / "data"))
    workdir = str(tmp_path / "run")
    real_save = checkpoints.Checkpointer.save

    def full_disk(self, step, examples_seen):
        if step >= 4:
            raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")
        return real_save(self, step, examples_seen)

    monkeypatch.setattr(checkpoints.Checkpointer, "save", full_disk)
    with pytest.raises(OSError, match="could not write the checkpoint of step 4 .*No space "
                                      "left on device.*ckpt-2 is intact"):
        train_lib.train_and_evaluate(_config(data), workdir)
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-2")
