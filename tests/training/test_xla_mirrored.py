"""jit_compile (XLA) under MirroredStrategy.

TensorFlow compiles a distributed replica step with XLA only when every replica is a GPU
(the all-reduces become NCCL collectives inside each replica's cluster). On the two
logical CPUs of conftest it cannot, so the loop falls back to the plain graph with a
warning; on GPUs the step must not need a `merge_call` (Keras' "only_first_replica"
counters did), which the GPU-path test checks by tracing TensorFlow's GPU code path.
"""
import logging

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.distribute import mirrored_run, mirrored_strategy

from dcgan_keras import config as config_lib
from dcgan_keras.models import build_dcgan
from dcgan_keras.training import strategies, train_lib

TINY = dict(image_size=16, channels=1, z_dim=8, base_width=4, sync_batchnorm=True, seed=3)
REAL = np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 1)).astype(np.float32)


def _cpus():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest splits the CPU into two logical devices"
    return devices


@pytest.fixture(scope="module")
def init_weights():
    gan = build_dcgan(**TINY)
    return gan.generator.get_weights(), gan.discriminator.get_weights()


def _gan(strategy, init_weights, precision="none", jit_compile=False):
    with train_lib.dtype_policy(train_lib.POLICIES[precision]), strategy.scope():
        gan = build_dcgan(**TINY)
        gan.generator.set_weights(init_weights[0])
        gan.discriminator.set_weights(init_weights[1])
        gan.compile(*train_lib.make_optimizers(config_lib.TrainConfig(), precision),
                    jit_compile=train_lib.replica_jit_compile(strategy, jit_compile))
    return gan


def _data(strategy):
    return strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensor_slices(REAL).batch(
            ctx.get_per_replica_batch_size(len(REAL))).repeat())


def _train(strategy, init_weights, jit_compile, steps=2):
    gan = _gan(strategy, init_weights, jit_compile=jit_compile)
    gan.fit(_data(strategy), epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return gan


def _variables(gan):
    return (gan.generator.weights + gan.discriminator.weights + gan.d_optimizer.variables
            + gan.g_optimizer.variables + [gan.step])


def test_mirrored_jit_on_two_cpus_falls_back_logged_and_trains(init_weights, caplog):
    # Not collective ops: test_dcgan runs a collective MirroredStrategy over the same
    # devices in this process (see test_multi_worker).
    def mirrored():
        return tf.distribute.MirroredStrategy(
            _cpus(), cross_device_ops=tf.distribute.ReductionToOneDevice())

    strategy = mirrored()
    assert "only when every replica is a GPU" in strategies.xla_unsupported_reason(strategy)
    with caplog.at_level(logging.WARNING):
        jit = _train(strategy, init_weights, jit_compile=True)
    assert any("XLA (jit_compile) is off" in r.getMessage() for r in caplog.records)
    assert int(jit.step.numpy()) == 2
    assert int(jit.d_optimizer.iterations.numpy()) == 2
    # Every replica holds the same weights, optimizer slots and counters.
    for v in _variables(jit):
        first, second = (x.numpy() for x in strategy.experimental_local_results(v.value))
        np.testing.assert_array_equal(first, second, err_msg=v.path)

    plain_strategy = mirrored()
    plain = _train(plain_strategy, init_weights, jit_compile=False)
    for a, b in zip(_variables(jit), _variables(plain)):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)

    assert not np.allclose(jit.generator.get_weights()[0], init_weights[0][0])


@pytest.mark.parametrize("precision", ["none", "float16"])
def test_gpu_path_compiles_each_replica_step_without_merge_call(init_weights, precision,
                                                                  monkeypatch):
    """Traces what TensorFlow runs on all-GPU replicas (the device test patched to say
    GPU): one jit-compiled step per replica, all-reduces inside it, no merge_call.
    Tracing only: the XLA collectives themselves compile for NCCL (GPUs), not on CPU."""
    monkeypatch.setattr(mirrored_run, "_is_gpu_device", lambda device: True)
    monkeypatch.setattr(mirrored_strategy, "_is_gpu_device", lambda device: True)
    monkeypatch.setattr(strategies, "xla_unsupported_reason", lambda strategy: None)
    strategy = tf.distribute.MirroredStrategy(_cpus())
    gan = _gan(strategy, init_weights, precision, jit_compile=True)
    gan.enable_ema(0.9)  # the EMA update runs inside the replica step too
    assert gan.replica_jit_compile and not gan.jit_compile  # the replica step, not run()
    for counter in (gan.step, gan.d_optimizer.iterations, gan.g_optimizer.iterations):
        assert counter.aggregation == "none", counter.path
    # What fit's train function runs per step: strategy.run(train_step), not compiled
    # itself; train_step calls the jit-compiled replica step.
    step = tf.function(lambda it: strategy.run(gan.train_step, args=(next(it),)))
    # Before the counters were replica-local this raised "`merge_call` called while
    # defining a new graph or a tf.function" (optimizer.iterations.assign_add).
    graph = step.get_concrete_function(iter(_data(strategy))).graph

    def xla_calls(graph_def):
        ops = list(graph_def.node) + [n for f in graph_def.library.function
                                      for n in f.node_def]
        return [n for n in ops if n.attr["_XlaMustCompile"].b]

    calls = xla_calls(graph.as_graph_def())
    devices = sorted({tf.DeviceSpec.from_string(n.device).device_index for n in calls})
    assert devices == [0, 1], [(n.name, n.device) for n in calls]
