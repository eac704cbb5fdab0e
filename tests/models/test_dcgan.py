"""The adversarial train_step, serialization, and correctness under MirroredStrategy."""
import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan_keras import losses
from dcgan_keras.models import DCGAN, build_dcgan
from dcgan_keras.training import train_lib

TINY = dict(image_size=16, channels=1, z_dim=8, base_width=4)


def _real(n=8, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 16, 16, 1)).astype("float32")


def _weights(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_train_step_updates_both_nets_and_g_step_leaves_d_alone():
    gan = build_dcgan(**TINY)
    gan.compile()
    g0, d0 = _weights(gan.generator), _weights(gan.discriminator)
    snapshot = {}
    original_apply = gan.g_optimizer.apply

    def spy(grads, variables):
        # Called for the G update: D has had its update, record it.
        snapshot["d"] = _weights(gan.discriminator)
        snapshot["vars"] = [v.path for v in variables]
        return original_apply(grads, variables)

    gan.g_optimizer.apply = spy
    logs = gan.train_step(_real())
    g1, d1 = _weights(gan.generator), _weights(gan.discriminator)
    assert not _same(g0, g1) and not _same(d0, d1)
    assert not _same(d0, snapshot["d"])  # the D step changed D
    assert _same(snapshot["d"], d1)  # ... and the G step did not
    assert snapshot["vars"] == [v.path for v in gan.generator.trainable_variables]
    assert int(gan.step.numpy()) == 1
    assert 0 < float(logs["d_x"]) < 1 and 0 < float(logs["d_g_z"]) < 1


def test_logged_losses_equal_the_loss_functions():
    gan = build_dcgan(**TINY)
    gan.compile()
    real = _real()
    z = gan.noise(8).numpy()  # the noise step 0 will draw
    fake = gan.generator(z, training=True)
    # Same forward passes as the D step (BatchNorm in training mode, weights unchanged).
    d_expected = losses.discriminator_loss(gan.discriminator(real, training=True),
                                           gan.discriminator(fake, training=True))
    logs = gan.train_step(real)
    assert float(logs["d_loss"]) == pytest.approx(float(np.mean(d_expected)), rel=1e-5)
    assert float(logs["g_loss"]) > 0


def test_noise_is_a_function_of_seed_and_step():
    gan = build_dcgan(**TINY, seed=3)
    a = gan.noise(4).numpy()
    np.testing.assert_array_equal(a, gan.noise(4).numpy())
    gan.step.assign(1)
    assert not np.allclose(a, gan.noise(4).numpy())
    other = build_dcgan(**TINY, seed=4)
    assert not np.allclose(a, other.noise(4).numpy())


def test_keras_save_and_load_round_trip_with_both_optimizers(tmp_path):
    gan = build_dcgan(**TINY)
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.4),
                g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    gan.train_step(_real())
    path = str(tmp_path / "gan.keras")
    gan.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, DCGAN)
    z = np.random.default_rng(1).normal(size=(3, 8)).astype("float32")
    np.testing.assert_allclose(loaded.generator(z).numpy(), gan.generator(z).numpy(), atol=1e-6)
    assert loaded.d_optimizer.learning_rate.numpy() == pytest.approx(1e-3)
    assert loaded.d_optimizer.beta_1 == pytest.approx(0.4)
    assert int(loaded.d_optimizer.iterations.numpy()) == 1
    for a, b in zip(loaded.g_optimizer.variables, gan.g_optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    assert int(loaded.step.numpy()) == 1
    assert loaded.get_config() == gan.get_config()


def _op_counts(concrete_function):
    """{op type: count} of a traced function's graph, the functions it calls included
    (their bodies are in the graph's function library)."""
    graph_def = concrete_function.graph.as_graph_def()
    counts = collections.Counter(node.op for node in graph_def.node)
    for function in graph_def.library.function:
        counts.update(node.op for node in function.node_def)
    return counts


def _three_steps(gan):
    """Weights and both optimizers' variables after 3 traced train steps of `gan`, and the
    op counts of its traced step."""
    step = tf.function(gan.train_step)
    for i in range(3):
        step(_real(seed=i))
    state = [v.numpy() for v in gan.weights + gan.d_optimizer.variables
             + gan.g_optimizer.variables]
    return state, _op_counts(step.get_concrete_function(tf.TensorSpec([8, 16, 16, 1])))


def test_fused_adam_matches_keras_adam():
    """Adam's fused update equals Keras' own elementwise update: same weights and slots,
    and one ResourceApplyAdam op per trained variable in the traced train step when fused
    (if Keras stopped calling `update_step`, both runs would be Keras' own update and
    equal)."""
    from dcgan_keras.models import adam
    results = []
    for fused in (False, True):
        keras.utils.set_random_seed(0)
        gan = build_dcgan(**TINY)
        gan.compile(*[adam.Adam(2e-4, beta_1=0.5, epsilon=adam.ADAM_EPSILON, epsilon_on="v_hat",
                                fused=fused) for _ in range(2)])
        assert gan.d_optimizer.uses_fused_update(gan.discriminator.trainable_variables[0]) \
            == fused
        state, ops = _three_steps(gan)
        results.append(state)
        assert ops["ResourceApplyAdam"] == (len(gan.trainable_variables) if fused else 0)
    assert int(gan.g_optimizer.iterations) == 3
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_bfloat16_kernels_take_adam_from_their_bfloat16_gradients(monkeypatch):
    """Under mixed bfloat16 with the native ops, each kernel cast to bfloat16 is updated by
    DcganAdam from its bfloat16 gradients (D's two, on real and fake images, summed in
    float32 inside), the other variables by ResourceApplyAdam; the weights and slots are
    those of ResourceApplyAdam on the float32 casts' sum, bit for bit."""
    from dcgan_keras.models import native_ops
    if native_ops.library() is None:
        pytest.skip(f"the native ops are off here: {native_ops.error()}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        results = []
        for native in (True, False):
            if not native:
                monkeypatch.setattr(native_ops, "bfloat16_parts", lambda gradient: None)
            keras.utils.set_random_seed(0)
            gan = build_dcgan(**TINY)
            gan.compile()
            state, ops = _three_steps(gan)
            results.append(state)
            kernels = [v for v in gan.trainable_variables if "kernel" in v.path
                       and "logit" not in v.path]  # the float32 logit's kernel is not cast
            assert ops["DcganAdam"] == (len(kernels) if native else 0)
            assert ops["ResourceApplyAdam"] == len(gan.trainable_variables) - ops["DcganAdam"]
    finally:
        keras.config.set_dtype_policy(previous)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_adam_is_the_papers_with_its_code_epsilon():
    """lr 2e-4, beta1 0.5, epsilon 1e-8 (the paper's code and PyTorch, not Keras' 1e-7) on
    the bias-corrected sqrt(v), for the default compile and for the train binary's
    optimizers, which take --adam_epsilon and --adam_epsilon_on."""
    from dcgan_keras.config import TrainConfig
    gan = build_dcgan(**TINY)
    gan.compile()
    for opt in (gan.d_optimizer, gan.g_optimizer):
        assert (float(opt.learning_rate), opt.beta_1, opt.epsilon) == pytest.approx(
            (2e-4, 0.5, 1e-8))
        assert opt.epsilon_on == "v_hat"  # on the bias-corrected sqrt(v), as its code
    d_opt, g_opt = train_lib.make_optimizers(TrainConfig(), "none")
    assert d_opt.epsilon == g_opt.epsilon == 1e-8
    assert d_opt.epsilon_on == g_opt.epsilon_on == "v_hat"
    d_opt, _ = train_lib.make_optimizers(TrainConfig(adam_epsilon=1e-6), "float16")
    assert d_opt.inner_optimizer.epsilon == 1e-6
    with pytest.raises(ValueError, match="adam_epsilon must be > 0"):
        TrainConfig(adam_epsilon=0).validate()


def _numpy_adam(var, grads, lr, b1, b2, eps, epsilon_on):
    """Reference Adam: Torch7 / Keras ("v") or PyTorch ("v_hat", Kingma & Ba's Alg. 1)."""
    m, v = np.zeros_like(var), np.zeros_like(var)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if epsilon_on == "v":
            var = var - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        else:
            var = var - lr / (1 - b1**t) * m / (np.sqrt(v / (1 - b2**t)) + eps)
    return var


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("epsilon_on", ["v", "v_hat"])
def test_adam_epsilon_placement_matches_its_reference(epsilon_on, fused):
    """Gradients near epsilon, where the two placements part: each follows its formula
    (Keras' own update and the fused ResourceApplyAdam alike) and not the other's."""
    from dcgan_keras.models import adam
    rng = np.random.default_rng(0)
    start = np.zeros(64, np.float32)  # Adam's step does not depend on the weights
    # Magnitudes from 1e-10 to 1e-4: below, near and far above eps (and eps / sqrt(1-b2)).
    scale = (10.0 ** rng.uniform(-10, -4, size=(64,))).astype(np.float32)
    grads = [(rng.normal(size=(64,)) * scale).astype(np.float32) for _ in range(4)]
    opt = adam.Adam(learning_rate=0.01, beta_1=0.5, epsilon=1e-8, epsilon_on=epsilon_on,
                    fused=fused)
    var = keras.Variable(start)
    opt.build([var])
    apply = tf.function(lambda g: opt.apply([g], [var]))
    for g in grads:
        apply(tf.constant(g))
    ops = _op_counts(apply.get_concrete_function(tf.TensorSpec([64])))
    assert ops["ResourceApplyAdam"] == (1 if fused else 0)  # the path this case tests
    want = _numpy_adam(start.astype(np.float64), grads, 0.01, 0.5, 0.999, 1e-8, epsilon_on)
    other = _numpy_adam(start.astype(np.float64), grads, 0.01, 0.5, 0.999, 1e-8,
                        {"v": "v_hat", "v_hat": "v"}[epsilon_on])
    np.testing.assert_allclose(var.numpy(), want, rtol=1e-4, atol=1e-10)
    assert np.abs(var.numpy() - other).max() > 1e-3  # can fail: the placements differ
    if epsilon_on == "v":  # and "v" is exactly Keras' Adam
        plain, var2 = keras.optimizers.Adam(0.01, beta_1=0.5, epsilon=1e-8), \
            keras.Variable(start)
        for g in grads:
            plain.apply([tf.constant(g)], [var2])
        np.testing.assert_allclose(var.numpy(), var2.numpy(), rtol=2e-5, atol=1e-10)


def test_adam_epsilon_on_is_validated_serialized_and_configured():
    from dcgan_keras.config import TrainConfig
    from dcgan_keras.models import adam
    with pytest.raises(ValueError, match="epsilon_on must be one of"):
        adam.Adam(epsilon_on="sqrt")
    with pytest.raises(ValueError, match="adam_epsilon_on must be one of"):
        TrainConfig(adam_epsilon_on="hat").validate()
    opt = adam.Adam(learning_rate=1e-3, epsilon_on="v_hat")
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(again) is adam.Adam and again.epsilon_on == "v_hat"
    assert again.learning_rate.numpy() == pytest.approx(1e-3)
    d_opt, g_opt = train_lib.make_optimizers(TrainConfig(adam_epsilon_on="v"), "none")
    assert d_opt.epsilon_on == g_opt.epsilon_on == "v"
    assert adam.Adam().epsilon_on == "v"  # the class is a drop-in for Keras' Adam


def test_mismatched_networks_are_refused():
    from dcgan_keras.models import Discriminator, Generator
    with pytest.raises(ValueError, match="same image_size"):
        DCGAN(Generator(16, 1, base_width=4), Discriminator(32, 1, base_width=4))
    with pytest.raises(ValueError, match="generator_loss"):
        build_dcgan(**TINY, generator_loss="wasserstein")


def _fit(strategy, real, init_weights, steps=1, optimizers=None, d_steps=1):
    """`steps` fit steps on the global batch `real` (each replica takes its slice)."""
    with strategy.scope():
        gan = build_dcgan(**TINY, sync_batchnorm=True, d_steps=d_steps)
        gan.generator.set_weights(init_weights[0])
        gan.discriminator.set_weights(init_weights[1])
        gan.compile(*(optimizers() if optimizers else ()))
    global_batch = len(real)

    def dataset_fn(ctx):
        per_replica = ctx.get_per_replica_batch_size(global_batch)
        return tf.data.Dataset.from_tensor_slices(real).batch(per_replica).repeat()

    data = strategy.distribute_datasets_from_function(dataset_fn)
    history = gan.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    assert int(gan.step.numpy()) == steps
    return gan, {name: values[-1] for name, values in history.history.items()}


def _two_cpus():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest splits the CPU into two logical devices"
    return devices


def _mirrored():
    """Two replicas on the two logical CPUs. Not collective ops: every collective
    MirroredStrategy over the same devices in one process (other test files make theirs)
    would reuse the same collective instance keys."""
    return tf.distribute.MirroredStrategy(
        _two_cpus(), cross_device_ops=tf.distribute.ReductionToOneDevice())


def _init_weights():
    init = build_dcgan(**TINY, sync_batchnorm=True)
    return init.generator.get_weights(), init.discriminator.get_weights()


def test_two_replicas_equal_one_replica_for_the_same_global_batch():
    weights = _init_weights()
    real = _real(16)
    one, logs1 = _fit(tf.distribute.get_strategy(), real, weights)
    two, logs2 = _fit(_mirrored(), real, weights)
    assert two.distribute_strategy.num_replicas_in_sync == 2
    for a, b in zip(one.generator.weights + one.discriminator.weights,
                    two.generator.weights + two.discriminator.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5, err_msg=a.path)
    # The logged losses are global means, not 1/N of them.
    assert set(logs1) == {"d_loss", "g_loss", "d_x", "d_g_z"}
    for name in logs1:
        assert logs2[name] == pytest.approx(logs1[name], rel=1e-4), name
    # The weights moved: the comparison is not between two untouched copies.
    assert not np.allclose(one.generator.get_weights()[0], weights[0][0])


def test_two_replicas_take_the_gradient_of_the_global_mean_loss():
    """With plain SGD the update is lr * gradient, so a gradient N times too large (sum
    over replicas of per-replica means) or N times too small shows in the weights; Adam's
    first step, ~lr * sign(g), would hide it."""
    def sgd(lr):
        return lambda: (keras.optimizers.SGD(lr), keras.optimizers.SGD(lr))

    weights = _init_weights()
    real = _real(16)
    one, _ = _fit(tf.distribute.get_strategy(), real, weights, 2, sgd(0.05))
    two, _ = _fit(_mirrored(), real, weights, 2, sgd(0.05))
    start = weights[0] + weights[1]

    def deltas(gan):
        now = gan.generator.get_weights() + gan.discriminator.get_weights()
        return [b - a for a, b in zip(start, now) if a.ndim > 1]  # the kernels

    for a, b in zip(deltas(one), deltas(two)):
        assert np.abs(a).max() > 1e-4  # SGD moved the kernel
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-6)
    # The check can fail: a 2x (or 0.5x) gradient, i.e. 2x (0.5x) the SGD step, does.
    for bug in (2.0, 0.5):
        wrong, _ = _fit(_mirrored(), real, weights, 2,
                        sgd(0.05 * bug))
        assert not all(np.allclose(b, a, rtol=1e-3, atol=1e-6)
                       for a, b in zip(deltas(one), deltas(wrong)))


def test_replicas_draw_different_noise():
    strategy = _mirrored()
    with strategy.scope():
        gan = build_dcgan(**TINY)
    per_replica = strategy.run(tf.function(lambda: gan.noise(4)))
    z0, z1 = [t.numpy() for t in strategy.experimental_local_results(per_replica)]
    assert not np.allclose(z0, z1)
    # Together they are the one-replica noise of the global batch.
    np.testing.assert_allclose(np.concatenate([z0, z1]), gan.noise(8).numpy(), atol=1e-6)


def test_compile_leaves_no_stray_optimizer_and_refuses_keras_arguments():
    gan = build_dcgan(**TINY)
    gan.compile()
    assert gan.optimizer is None  # not Keras' default RMSprop
    assert {type(o).__name__ for o in (gan.d_optimizer, gan.g_optimizer)} == {"Adam"}
    with pytest.raises(ValueError, match="takes d_optimizer and g_optimizer"):
        gan.compile(optimizer="adam")
    with pytest.raises(ValueError, match="pass no optimizer= or loss="):
        gan.compile(loss="mse")


def test_predict_returns_images_and_evaluate_scores_real_data_without_training():
    gan = build_dcgan(**TINY)
    gan.compile()
    z = np.random.default_rng(0).normal(size=(5, 8)).astype("float32")
    images = gan.predict(z, verbose=0)
    assert images.shape == (5, 16, 16, 1) and np.abs(images).max() <= 1
    np.testing.assert_allclose(images, gan.generator(z, training=False).numpy(), atol=1e-6)
    before = [w.copy() for w in gan.get_weights()]
    real = _real(16)
    scores = gan.evaluate(real, batch_size=8, verbose=0, return_dict=True)
    assert set(scores) == {"d_loss", "g_loss", "d_x", "d_g_z"}
    assert all(np.array_equal(a, b) for a, b in zip(before, gan.get_weights()))
    # d_loss is D's binary cross-entropy on the real images and on G(z) (inference mode).
    z = gan.noise(8, stream=3).numpy()
    want = losses.discriminator_loss(gan.discriminator(real[:8]),
                                     gan.discriminator(gan.generator(z)))
    first = gan.evaluate(real[:8], batch_size=8, verbose=0, return_dict=True)
    assert first["d_loss"] == pytest.approx(float(np.mean(want)), rel=1e-5)
    # fit(validation_data=...) runs the same test_step.
    history = gan.fit(real, epochs=1, batch_size=8, validation_data=real[:8], verbose=0)
    assert set(history.history) >= {"val_d_loss", "val_d_x", "d_loss"}


def test_keras_file_save_load_and_fit_continue_exactly_as_one_run(tmp_path):
    """fit 1 epoch, save .keras, load, fit 1 more == fit 2 epochs (EMA and all)."""
    real = _real(32)
    data = tf.data.Dataset.from_tensor_slices(real).batch(8)  # the same order every epoch

    def fresh():
        keras.utils.set_random_seed(1)
        gan = build_dcgan(**TINY, ema_decay=0.9)
        gan.compile(steps_per_execution=2)
        return gan

    straight = fresh()
    straight.fit(data, epochs=2, verbose=0)
    halves = fresh()
    halves.fit(data, epochs=1, verbose=0)
    path = str(tmp_path / "gan.keras")
    halves.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.steps_per_execution == 2 and loaded.ema_decay == 0.9
    loaded.fit(data, epochs=1, verbose=0)
    assert int(loaded.step.numpy()) == int(straight.step.numpy()) == 8
    for a, b in zip(straight.weights + straight.d_optimizer.variables
                    + straight.g_optimizer.variables,
                    loaded.weights + loaded.d_optimizer.variables
                    + loaded.g_optimizer.variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=a.path)
    # And the second epoch did move the weights (the comparison can fail).
    assert not np.allclose(halves.generator.get_weights()[0],
                           loaded.generator.get_weights()[0])


def test_fit_under_a_strategy_opens_the_data_once():
    """Keras' fit would read a batch from a first iterator to build the model and then
    open a second one (a reshuffling dataset then starts in its next epoch's order);
    the DCGAN needs no build, so its data is opened once. Fails loudly if Keras renames
    the hook (`DCGAN._maybe_symbolic_build`)."""
    assert hasattr(keras.Model, "_maybe_symbolic_build")
    opened = []
    real = _real(16)

    def images():
        opened.append(1)
        yield from real

    strategy = _mirrored()
    with strategy.scope():
        gan = build_dcgan(**TINY)
        gan.compile()
    data = strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_generator(
            images, output_signature=tf.TensorSpec([16, 16, 1], tf.float32)).batch(8))
    gan.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
    assert len(opened) == 1 and int(gan.step.numpy()) == 1


def test_fit_on_datasets_does_not_warn_that_shuffle_is_ignored():
    """tf.data (and distributed) input is ordered by its pipeline; Keras' fit would warn
    on each call that its default shuffle=True is ignored for it."""
    import warnings
    data = tf.data.Dataset.from_tensor_slices(_real(16)).batch(8)
    strategy = _mirrored()
    with strategy.scope():
        gan = build_dcgan(**TINY)
        gan.compile()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gan.fit(data, epochs=1, verbose=0)
        gan.fit(strategy.experimental_distribute_dataset(data), epochs=1, verbose=0)
    assert int(gan.step.numpy()) == 4
    assert not [w for w in caught if "shuffle" in str(w.message)], \
        [str(w.message) for w in caught]


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_fit_trains_in_mixed_precision(precision):
    """bfloat16 (the CPU default where the CPU has bf16 units) and float16 with loss
    scaling (the GPU default) through fit: float32 weights, low-precision compute,
    float32 images out of G and logits out of D, finite losses, the weights move."""
    from dcgan_keras.config import TrainConfig
    policy = train_lib.POLICIES[precision]
    with train_lib.dtype_policy(policy):
        gan = build_dcgan(**TINY)
        gan.compile(*train_lib.make_optimizers(TrainConfig(), precision))
    if precision == "float16":
        assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    conv = gan.discriminator.get_layer("block2_conv")
    assert conv.compute_dtype == precision and conv.kernel.dtype == "float32"
    before = gan.generator.get_weights()[0].copy()
    history = gan.fit(_real(16), batch_size=8, epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert gan.generator(np.zeros((2, 8), "float32")).dtype == "float32"
    assert not np.allclose(before, gan.generator.get_weights()[0])


def _sgd_gan_and_plain_copy(**options):
    """A DCGAN with `options` compiled with SGD(0.1) for both nets (update = lr * gradient),
    and (G, D): plain copies of its nets with the same weights, to step by hand."""
    gan = build_dcgan(**TINY, **options)
    gan.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1))
    ref = build_dcgan(**TINY)
    ref.generator.set_weights(gan.generator.get_weights())
    ref.discriminator.set_weights(gan.discriminator.get_weights())
    return gan, ref.generator, ref.discriminator


def test_d_steps_make_k_d_updates_on_their_chunks_then_one_g_update_on_fresh_z():
    """d_steps=2, written out by hand with SGD (update = lr * gradient): each D step on its
    half of the batch and G of its own slice of one z draw (stream 0), then the G update
    on fresh z (stream 1) through the twice-updated D."""
    gan, G, D = _sgd_gan_and_plain_copy(d_steps=2)
    real = _real(8)
    z_d = np.split(gan.noise(8, stream=0).numpy(), 2)  # what step 0 draws
    z_g = gan.noise(4, stream=1).numpy()
    assert not np.allclose(z_d[0], z_g)

    def sgd(loss_fn, variables):
        with tf.GradientTape() as tape:
            loss = loss_fn()
        for v, g in zip(variables, tape.gradient(loss, variables)):
            v.assign(v - 0.1 * g)

    for chunk, z in zip(np.split(real, 2), z_d):
        fake = G(z, training=True)
        sgd(lambda: tf.reduce_mean(losses.discriminator_loss(D(chunk, training=True),
                                                             D(fake, training=True))),
            D.trainable_variables)
    sgd(lambda: tf.reduce_mean(losses.generator_loss_nonsaturating(
        D(G(z_g, training=True), training=True))), G.trainable_variables)

    gan.train_step(real)
    assert int(gan.d_optimizer.iterations.numpy()) == 2
    assert int(gan.g_optimizer.iterations.numpy()) == 1
    for a, b in zip(gan.generator.weights + gan.discriminator.weights, G.weights + D.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-6, err_msg=a.path)
    assert DCGAN.from_config(gan.get_config()).d_steps == 2
    with pytest.raises(ValueError, match="does not split into d_steps = 2"):
        gan.train_step(_real(7))
    with pytest.raises(ValueError, match="d_steps must be an integer >= 1"):
        build_dcgan(**TINY, d_steps=0)


def test_d_steps_on_two_replicas_equal_one_replica():
    """D step j takes the j-th chunk of each replica's share of the batch, and the j-th
    global chunk of the noise: one replica fed the batch in that order makes the same run."""
    weights = _init_weights()
    real = _real(16)
    # Two replicas: replica r holds real[8r:8r+8], its chunk j real[8r+4j:8r+4j+4].
    as_chunked = np.concatenate([real[0:4], real[8:12], real[4:8], real[12:16]])
    one, logs1 = _fit(tf.distribute.get_strategy(), as_chunked, weights, d_steps=2)
    two, logs2 = _fit(_mirrored(), real, weights, d_steps=2)
    for a, b in zip(one.generator.weights + one.discriminator.weights,
                    two.generator.weights + two.discriminator.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5, err_msg=a.path)
    for name in logs1:
        assert logs2[name] == pytest.approx(logs1[name], rel=1e-4), name
    assert int(two.d_optimizer.iterations.numpy()) == 2


def test_instance_noise_is_added_to_every_image_d_sees_and_annealed_to_zero():
    """One step written out by hand with SGD: D sees real + sigma eps_0 and
    G(z) + sigma eps_1 (the same noisy fakes in the G step); sigma falls linearly."""
    gan, G, D = _sgd_gan_and_plain_copy(instance_noise=0.5, instance_noise_steps=4)
    real = _real(8)
    z = gan.noise(8).numpy()
    noisy_real = gan.noisy(tf.constant(real), stream=0).numpy()
    eps_real = (noisy_real - real) / 0.5
    assert abs(eps_real.std() - 1) < 0.1 and abs(eps_real.mean()) < 0.1
    with tf.GradientTape() as g_tape:
        fake = G(z, training=True)
        noisy_fake = gan.noisy(fake, stream=1)
    eps_fake = (noisy_fake - fake).numpy() / 0.5
    assert abs(eps_fake.std() - 1) < 0.1 and not np.allclose(eps_fake, eps_real)
    with tf.GradientTape() as tape:
        d_loss = tf.reduce_mean(losses.discriminator_loss(
            D(noisy_real, training=True), D(tf.stop_gradient(noisy_fake), training=True)))
    for v, g in zip(D.trainable_variables, tape.gradient(d_loss, D.trainable_variables)):
        v.assign(v - 0.1 * g)
    with g_tape:
        g_loss = tf.reduce_mean(losses.generator_loss_nonsaturating(
            D(noisy_fake, training=True)))
    for v, g in zip(G.trainable_variables, g_tape.gradient(g_loss, G.trainable_variables)):
        v.assign(v - 0.1 * g)
    gan.train_step(real)
    for a, b in zip(gan.generator.weights + gan.discriminator.weights, G.weights + D.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-6, err_msg=a.path)
    # sigma: 0.5 at step 0, then 0.375 at step 1, ..., 0 from step 4 on.
    for step, sigma in ((1, 0.375), (2, 0.25), (4, 0.0), (9, 0.0)):
        gan.step.assign(step)
        assert float(gan.instance_noise_sigma()) == pytest.approx(sigma)
    np.testing.assert_array_equal(gan.noisy(tf.constant(real), 0).numpy(), real)
    # Off: no noise at all; the config round-trips; bad values are refused.
    x = tf.constant(real)
    assert build_dcgan(**TINY).noisy(x, 0) is x
    again = DCGAN.from_config(gan.get_config())
    assert (again.instance_noise, again.instance_noise_steps) == (0.5, 4)
    with pytest.raises(ValueError, match="instance_noise must be >= 0"):
        build_dcgan(**TINY, instance_noise=0.1)
