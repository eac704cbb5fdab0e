"""Each Keras workaround of models/keras_compat.py: what it relies on still exists and
behaves as assumed, and the workaround does its job. A failure here after a Keras or
TensorFlow upgrade means the workaround needs a new form, or is no longer needed."""
import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as keras_tf_trainer
from tensorflow.python.distribute import (collective_all_reduce_strategy, mirrored_run,
                                          mirrored_strategy)

from dcgan_keras.models import keras_compat


def _mirrored():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest splits the CPU into two logical devices"
    return tf.distribute.MirroredStrategy(devices,
                                          cross_device_ops=tf.distribute.ReductionToOneDevice())


# --- adam_slots ---

def test_adam_slots_are_the_moments_keras_adam_updates():
    """After one step from zero slots, m = (1 - b1) g and v = (1 - b2) g^2 (hand
    calculation), for each variable its own, found from the Keras or the TF variable."""
    opt = keras.optimizers.Adam(0.1, beta_1=0.5, beta_2=0.75)
    a, b = keras.Variable(np.zeros(3, np.float32)), keras.Variable(np.zeros(2, np.float32))
    opt.build([a, b])
    grads = {id(a): np.array([1.0, -2.0, 3.0], np.float32),
             id(b): np.array([0.5, 4.0], np.float32)}
    opt.apply([tf.constant(grads[id(a)]), tf.constant(grads[id(b)])], [a, b])
    for var in (a, b):
        g = grads[id(var)]
        for handle in (var, var.value):  # update_step receives the TF variable
            m, v = keras_compat.adam_slots(opt, handle)
            np.testing.assert_allclose(m.numpy(), 0.5 * g, rtol=1e-6)
            np.testing.assert_allclose(v.numpy(), 0.25 * g * g, rtol=1e-6)


# --- make_replica_local ---

def test_keras_counters_still_need_make_replica_local(monkeypatch):
    """Keras' optimizer.iterations is "only_first_replica", whose assign in an XLA
    replica step needs a merge_call (traced as on GPUs: the device test patched, as in
    tests/training/test_xla_mirrored.py); once replica-local it traces. If the first
    half fails, Keras changed its counters and the workaround may be unnecessary."""
    monkeypatch.setattr(mirrored_run, "_is_gpu_device", lambda device: True)
    monkeypatch.setattr(mirrored_strategy, "_is_gpu_device", lambda device: True)
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")][:2])
    for replica_local in (False, True):
        with strategy.scope():
            opt = keras.optimizers.Adam()
            counter = opt.iterations
            assert counter.aggregation == "only_first_replica"
            assert hasattr(counter, "_value") and hasattr(counter, "_aggregation")
            if replica_local:
                keras_compat.make_replica_local(counter)
        step = tf.function(lambda: counter.assign_add(1), jit_compile=True)
        trace = tf.function(lambda: strategy.run(step)).get_concrete_function
        if replica_local:
            trace()
        else:
            with pytest.raises(RuntimeError, match="merge_call"):
                trace()


def test_make_replica_local_keeps_the_value_path_and_checkpoint_entry(tmp_path):
    """A counter checkpointed before the change restores into one after it (the
    checkpoints of earlier runs still load), and the change is a no-op without a
    strategy."""
    opt = keras.optimizers.Adam()
    opt.iterations.assign(7)
    path = tf.train.Checkpoint(opt=opt).save(str(tmp_path / "ckpt"))
    keras_compat.make_replica_local(opt.iterations)  # no strategy: unchanged
    assert opt.iterations.aggregation == "only_first_replica"

    with _mirrored().scope():
        again = keras.optimizers.Adam()
        before = again.iterations.path
        keras_compat.make_replica_local(again.iterations)
    assert again.iterations.aggregation == "none"
    assert again.iterations.value.aggregation == tf.VariableAggregation.NONE
    assert again.iterations.path == before
    tf.train.Checkpoint(opt=again).restore(path).assert_existing_objects_matched()
    assert int(again.iterations.numpy()) == 7


# --- reducible_logs ---

def test_keras_still_reduces_multi_worker_logs_over_axis_0(monkeypatch):
    """What reducible_logs works around: under a multi-worker strategy Keras reduces each
    log with strategy.reduce("MEAN", value, axis=0) (a scalar has no axis 0), and it
    tells multi-worker mode by the private extended._in_multi_worker_mode()."""
    assert hasattr(collective_all_reduce_strategy.CollectiveAllReduceExtended,
                   "_in_multi_worker_mode")
    calls = []

    class Recorder:
        def reduce(self, op, value, axis=None):
            calls.append((op, axis))
            return value

    monkeypatch.setattr(keras_tf_trainer, "_collective_all_reduce_multi_worker",
                        lambda strategy: True)
    keras_tf_trainer.reduce_per_replica({"d_loss": tf.constant(1.0)}, Recorder(), "auto")
    assert calls == [("MEAN", 0)]


def test_reducible_logs_are_vectors_only_in_multi_worker_mode(monkeypatch):
    # A [1] vector reduced over axis 0 is the scalar mean of the replicas' values.
    strategy = _mirrored()
    per_replica = strategy.run(lambda: tf.reshape(tf.cast(
        tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32), [1]))
    mean = strategy.reduce("MEAN", per_replica, axis=0)
    assert mean.shape == [] and float(mean) == pytest.approx(0.5)

    logs = {"d_loss": tf.constant(0.5), "g_loss": tf.constant(2.0)}
    assert keras_compat.reducible_logs(logs) is logs  # no strategy

    class MultiWorker:
        extended = type("Extended", (), {"_in_multi_worker_mode": lambda self: True})()

    monkeypatch.setattr(tf.distribute, "get_strategy", lambda: MultiWorker())
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", MultiWorker)
    shaped = keras_compat.reducible_logs(logs)
    assert {k: v.shape.as_list() for k, v in shaped.items()} == {"d_loss": [1], "g_loss": [1]}


# --- OpensDataOnce ---

class _Tiny(keras.Model):
    """A model built in __init__, like the DCGAN."""

    def __init__(self):
        super().__init__(name="tiny")
        self.dense = keras.layers.Dense(1)
        self.dense.build((None, 2))
        self.built = True

    def call(self, x):
        return self.dense(x)


class _TinyOpensDataOnce(keras_compat.OpensDataOnce, _Tiny):
    pass


def test_keras_fit_still_calls_the_symbolic_build_hook():
    """OpensDataOnce overrides Keras' private `_maybe_symbolic_build`; a renamed hook
    would leave the override silently unused."""
    assert list(inspect.signature(keras.Model._maybe_symbolic_build).parameters) == [
        "self", "iterator", "data_batch"]
    calls = []

    class Spy(_Tiny):
        def _maybe_symbolic_build(self, iterator=None, data_batch=None):
            calls.append(iterator is not None)
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    model = Spy()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32), batch_size=2,
              verbose=0)
    assert calls == [True]


@pytest.mark.parametrize("model_class, opened", [(_Tiny, 2), (_TinyOpensDataOnce, 1)])
def test_fit_under_a_strategy_opens_a_built_models_data_once(model_class, opened):
    """Keras' fit under a strategy reads a first iterator to build the model, then opens
    a second one (2); with OpensDataOnce a built and compiled model's data is opened once.
    If Keras stops opening twice, the workaround is no longer needed."""
    counts = []

    def examples():
        counts.append(1)
        for i in range(8):
            yield np.full([2], i, np.float32), np.zeros([1], np.float32)

    strategy = _mirrored()
    with strategy.scope():
        model = model_class()
        model.compile(optimizer="sgd", loss="mse")
    spec = (tf.TensorSpec([2], tf.float32), tf.TensorSpec([1], tf.float32))
    data = strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_generator(examples, output_signature=spec).batch(2))
    model.fit(data, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)
    assert len(counts) == opened


# --- clone_network ---

def test_keras_clone_model_still_drops_a_functional_subclass():
    """What clone_network works around: clone_model of the package's Generator (its own
    get_config) returns a plain Functional model without the Generator's attributes."""
    from dcgan_keras.models import Generator
    clone = keras.models.clone_model(Generator(image_size=16, channels=1, z_dim=8,
                                               base_width=4))
    assert type(clone) is not Generator and not hasattr(clone, "z_distribution")


def test_clone_network_keeps_the_class_the_prior_and_every_weight():
    from dcgan_keras.models import Generator
    keras.utils.set_random_seed(0)
    generator = Generator(image_size=16, channels=1, z_dim=8, base_width=4,
                          z_distribution="normal")
    for variable in generator.non_trainable_variables:  # BatchNorm statistics count too
        variable.assign(np.full(variable.shape, 0.5, np.float32))
    x = keras.Input((3,))
    functional = keras.Model(x, keras.layers.Dense(2)(keras.layers.Dense(4)(x)))
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    for model in (generator, functional, sequential):
        copy = keras_compat.clone_network(model)
        assert type(copy) is type(model) and copy is not model
        for a, b in zip(model.weights, copy.weights):
            assert a is not b
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert keras_compat.clone_network(generator).z_distribution == "normal"


# --- own_dtype_value ---

def test_own_dtype_value_is_the_uncast_variable_inside_an_autocast_call():
    """Inside a mixed-precision layer's call a read of the kernel is autocast to bfloat16;
    own_dtype_value gives its float32 value, and gradients reach the variable through it."""
    seen = {}

    class Probe(keras.layers.Dense):
        def call(self, inputs):
            seen["autocast"] = tf.convert_to_tensor(self.kernel).dtype
            own = keras_compat.own_dtype_value(self.kernel)
            seen["own"] = own.dtype
            return tf.matmul(tf.cast(inputs, tf.float32), own)

    layer = Probe(2, use_bias=False, dtype="mixed_bfloat16")
    x = tf.constant([[1.0, 2.0, 3.0]])
    layer.build(x.shape)
    layer.kernel.assign(np.full([3, 2], 1.0 + 2.0 ** -10, np.float32))  # not a bfloat16
    with tf.GradientTape() as tape:
        y = layer(x)
    assert seen == {"autocast": tf.bfloat16, "own": tf.float32}
    np.testing.assert_array_equal(y.numpy(), np.full([1, 2], 6.0 * (1.0 + 2.0 ** -10),
                                                     np.float32))
    grad = tape.gradient(y, layer.kernel)
    np.testing.assert_array_equal(grad.numpy(), np.repeat([[1.0], [2.0], [3.0]], 2, axis=1))


# --- skip_input_casts ---

@pytest.mark.parametrize("skip", [False, True])
def test_skip_input_casts_leaves_the_input_dtype_to_call(skip):
    """Keras casts a float32 layer's bfloat16 input before `call`; after skip_input_casts
    `call` receives it as it came (and an input already in the dtype is never cast)."""
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, inputs):
            seen.append(inputs.dtype)
            return tf.cast(inputs, tf.float32)

    layer = Probe(dtype="float32")
    if skip:
        keras_compat.skip_input_casts(layer)
    layer(tf.constant([1.5], tf.bfloat16))
    layer(tf.constant([1.5], tf.float32))
    assert seen == [tf.bfloat16 if skip else tf.float32, tf.float32]
