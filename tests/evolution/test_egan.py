"""The E-GAN model: selection, fitness, replicas and an exact save/resume of the population."""
import glob

import keras
import numpy as np
import pytest
import tensorflow as tf

from testutil import egan_state
from dcgan_keras.evolution import EGAN, build_egan
from dcgan_keras.models import DCGAN, Discriminator, Generator
from dcgan_keras import config as config_lib
from dcgan_keras.training import callbacks, train_lib

TINY = dict(image_size=16, channels=1, z_dim=8, base_width=4)


def _real(n=12, seed=0):  # 12: a multiple of d_steps x parents = 3 x 2
    return np.random.default_rng(seed).uniform(-1, 1, (n, 16, 16, 1)).astype("float32")


def _egan(g_optimizer=None, **kwargs):
    keras.utils.set_random_seed(0)
    gan = build_egan(**TINY, **{"fitness_batch": 16, **kwargs})
    gan.compile(g_optimizer=g_optimizer)
    return gan


def _numpy(variables):
    return [v.numpy().copy() for v in variables]


def _capture(gan):
    """Records each train_step's children, F_q, F_d, F and the step they were made at."""
    seen = {}
    make = gan._variation_and_evaluation

    def spy(*args):
        seen["step"] = int(gan.step.numpy())
        quality, diversity, g_losses, children = make(*args)
        seen.update(quality=quality.numpy(), diversity=diversity.numpy(),
                    fitness=quality.numpy() + gan.gamma * diversity.numpy(),
                    children=[[t.numpy() for t in c] for c in children])
        seen.setdefault("generations", []).append((seen["quality"], seen["diversity"]))
        return quality, diversity, g_losses, children

    gan._variation_and_evaluation = spy
    return seen


def _force_fitness(gan, values):
    """Replaces the evaluation by fixed values of F (as F_q, F_d = 0), child by child."""
    it = iter(values * 10)
    gan._fitness = lambda *args: (tf.constant(next(it), tf.float32), tf.constant(0.0))


@pytest.mark.parametrize("parents, forced, order", [
    (1, [0.1, 0.3, 0.9], [2]),
    (2, [0.1, 0.5, 0.3, 0.9, 0.2, 0.4], [3, 1]),
])
def test_selection_keeps_the_fittest_children_with_their_optimizer_state(parents, forced,
                                                                          order):
    gan = _egan(parents=parents)
    real = _real()
    gan.train_step(real)  # a first generation: the children's Adam moments now differ
    seen = _capture(gan)
    _force_fitness(gan, forced)
    wins = gan.wins.numpy().copy()
    logs = gan.train_step(real)
    children = seen["children"]
    for slot, k in enumerate(order):
        state = gan._state(gan.parents[slot], gan.parent_optimizers[slot])
        for variable, value in zip(state, children[k]):
            np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    # The children differ (weights and Adam moments), so the check can fail.
    assert not np.array_equal(children[order[0]][0], children[(order[0] + 1) % 3][0])
    assert gan.generator is gan.parents[0] and gan.g_optimizer is gan.parent_optimizers[0]
    expected = wins.copy()
    for k in order:
        expected[k % 3] += 1
    np.testing.assert_array_equal(gan.wins.numpy(), expected)
    assert [float(logs[f"wins_{m}"]) for m in gan.mutations] == expected.tolist()


def _hand_fitness(gan, seen, real, gamma, fd_sign):
    """F_q and F = F_q + gamma F_d of every child, recomputed outside the model with the
    children's weights set into a fresh Generator."""
    step = gan.step.numpy()
    gan.step.assign(seen["step"])
    z = gan.noise(gan.fitness_batch, stream=2)
    gan.step.assign(step)
    D = gan.discriminator  # unchanged by the evaluation, so as the children met it
    net = Generator.from_config(gan.generator.get_config())
    n_g = len(net.trainable_variables) + len(net.non_trainable_variables)
    quality, fitness = [], []
    for child in seen["children"]:
        for variable, value in zip(net.trainable_variables + net.non_trainable_variables,
                                   child[:n_g]):
            variable.assign(value)
        statistics = _numpy(D.non_trainable_variables)
        with tf.GradientTape() as tape:
            fake_logits = D(net(z, training=True), training=True)
            loss = (tf.reduce_mean(tf.nn.softplus(-D(real, training=True)))
                    + tf.reduce_mean(tf.nn.softplus(fake_logits)))
        grads = tape.gradient(loss, D.trainable_variables)
        for variable, value in zip(D.non_trainable_variables, statistics):
            variable.assign(value)
        norm = np.sqrt(sum(np.sum(g.numpy().astype(np.float64) ** 2) for g in grads))
        q = float(np.mean(tf.sigmoid(fake_logits).numpy()))
        quality.append(q)
        fitness.append(q + gamma * (-1 if fd_sign == "minus" else 1) * np.log(norm))
    return np.array(quality), np.array(fitness)


def test_with_gamma_zero_the_choice_maximises_quality():
    gan = _egan(gamma=0.0)
    real = _real()
    gan.train_step(real)
    seen = _capture(gan)
    gan.train_step(real)
    quality, _ = _hand_fitness(gan, seen, real, 0.0, "minus")
    np.testing.assert_allclose(seen["fitness"], quality, rtol=1e-5, atol=1e-6)
    assert np.ptp(quality) > 0  # the children are not all alike
    winner = int(np.argmax(seen["fitness"]))
    assert quality[winner] >= quality.max() - 1e-6
    for variable, value in zip(gan.generator.trainable_variables, seen["children"][winner]):
        np.testing.assert_array_equal(variable.numpy(), value)


@pytest.mark.parametrize("fd_sign", ["minus", "plus"])
def test_fitness_is_quality_plus_gamma_times_the_log_gradient_norm(fd_sign):
    gan = _egan(gamma=0.5, fd_sign=fd_sign)
    real = _real()
    gan.train_step(real)
    seen = _capture(gan)
    d_before = _numpy(gan.discriminator.weights)
    gan.reset_metrics()  # the logs then hold this generation's values alone
    logs = gan.train_step(real)
    quality, fitness = _hand_fitness(gan, seen, real, 0.5, fd_sign)
    np.testing.assert_allclose(seen["fitness"], fitness, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(seen["quality"], quality, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(fitness - quality) > 1e-3)  # F_d does count
    # Each child's F_q and F_d are logged apart, and the fittest child's index.
    diversity = (fitness - quality) / 0.5
    for k, name in enumerate(gan.child_names):
        assert float(logs[f"Fq_{name}"]) == pytest.approx(quality[k], rel=1e-5, abs=1e-6)
        assert float(logs[f"Fd_{name}"]) == pytest.approx(diversity[k], rel=1e-4, abs=1e-5)
        assert float(logs[f"F_{name}"]) == pytest.approx(fitness[k], rel=1e-4, abs=1e-5)
    assert int(logs["selected"]) == int(np.argmax(fitness))
    assert not all(np.array_equal(a, b) for a, b in
                   zip(d_before, _numpy(gan.discriminator.weights)))


@pytest.mark.parametrize("gamma, decided", [(0.2, 3), (0.05, 0), (0.0, 0)])
def test_diversity_decided_counts_the_generations_where_f_d_changed_the_choice(gamma,
                                                                               decided):
    """F_q = (0.5, 0.4, 0.3) and F_d = (-2, -1, 0) every generation: F_q alone keeps child
    0; F keeps child 2 once gamma > 0.1 (F = 0.1, 0.2, 0.3 at gamma 0.2)."""
    gan = _egan(gamma=gamma)
    values = iter([(0.5, -2.0), (0.4, -1.0), (0.3, 0.0)] * 3)
    gan._fitness = lambda *args: tuple(tf.constant(v) for v in next(values))
    for _ in range(3):
        logs = gan.train_step(_real())
    winner = 2 if decided else 0
    assert int(gan.diversity_decided.numpy()) == int(logs["diversity_decided"]) == decided
    assert int(logs["selected"]) == winner
    assert gan.wins.numpy().tolist() == [3 * (winner == h) for h in range(3)]


@pytest.mark.parametrize("gamma", [0.0, 50.0])
def test_diversity_decided_matches_the_generations_count_on_real_fitness(gamma):
    """gamma = 0: F is F_q, so the counter stays 0. gamma = 50: F is mostly F_d; the
    counter is the number of generations whose argmax of F_q + gamma F_d (from the
    children's own F_q and F_d) is not the argmax of F_q, and some are."""
    gan = _egan(gamma=gamma)
    seen = _capture(gan)
    for seed in range(5):
        gan.train_step(_real(seed=seed))
    expected = sum(int(np.argmax(q + gamma * d) != np.argmax(q))
                   for q, d in seen["generations"])
    assert len(seen["generations"]) == 5
    assert int(gan.diversity_decided.numpy()) == expected
    assert (expected > 0) == (gamma > 0)


def _fit(strategy, real, init, steps):
    with strategy.scope():
        gan = build_egan(**TINY, sync_batchnorm=True, d_steps=1, fitness_batch=16)
        gan.generator.set_weights(init[0])
        gan.discriminator.set_weights(init[1])
        # Plain SGD for G: the mutations' children differ from the first generation on.
        gan.compile(g_optimizer=keras.optimizers.SGD(0.05))
    global_batch = len(real)

    def dataset_fn(ctx):
        per_replica = ctx.get_per_replica_batch_size(global_batch)
        return tf.data.Dataset.from_tensor_slices(real).batch(per_replica).repeat()

    data = strategy.distribute_datasets_from_function(dataset_fn)
    logs = gan.fit(data, epochs=1, steps_per_epoch=steps, verbose=0).history
    return gan, {name: values[-1] for name, values in logs.items()}


def test_two_replicas_make_the_same_children_and_selection_as_one():
    init = build_egan(**TINY, sync_batchnorm=True)
    init = (init.generator.get_weights(), init.discriminator.get_weights())
    real = _real(16)
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest splits the CPU into two logical devices"
    one, logs1 = _fit(tf.distribute.get_strategy(), real, init, 3)
    two, logs2 = _fit(tf.distribute.MirroredStrategy(devices), real, init, 3)
    np.testing.assert_array_equal(one.wins.numpy(), two.wins.numpy())
    for name in [f"{f}_{m}" for f in ("F", "Fq", "Fd")
                 for m in ("minimax", "heuristic", "least_squares")] + ["g_loss"]:
        assert logs2[name] == pytest.approx(logs1[name], rel=1e-4, abs=1e-6), name
    assert (logs2["selected"], logs2["diversity_decided"]) == (logs1["selected"],
                                                             logs1["diversity_decided"])
    for a, b in zip(one.generator.weights + one.discriminator.weights,
                    two.generator.weights + two.discriminator.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5, err_msg=a.path)
    assert not np.allclose(one.generator.get_weights()[0], init[0][0])


def test_the_population_survives_a_checkpoint_round_trip_exactly(tmp_path):
    data = tf.data.Dataset.from_tensor_slices(_real(48)).batch(12)  # 4 generations an epoch
    gan = _egan(parents=2)
    ckpt = callbacks.Checkpoint(str(tmp_path), batch_size=12, every_n_steps=0)
    gan.fit(data, epochs=1, verbose=0, callbacks=[ckpt])
    assert sorted(glob.glob(str(tmp_path / "*.index")))[-1].endswith("ckpt-4.index")
    reader = tf.train.load_checkpoint(str(tmp_path / "ckpt-4"))
    names = reader.get_variable_to_shape_map()
    assert any(n.startswith("egan_parent_1_optimizer/") for n in names)
    assert "egan_diversity_decided/.ATTRIBUTES/VARIABLE_VALUE" in names
    fresh = _egan(parents=2)
    restore = callbacks.Checkpoint(str(tmp_path), batch_size=12)
    restore.set_model(fresh)
    assert restore.restore().endswith("ckpt-4")
    assert gan.wins.numpy().sum() == 8  # 4 generations x 2 survivors
    for a, b in zip(egan_state(gan), egan_state(fresh)):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # The restored population evolves on exactly as the original.
    before = gan.generator.get_weights()[0].copy()
    for model in (gan, fresh):
        model.fit(data, epochs=1, verbose=0)
    for a, b in zip(egan_state(gan), egan_state(fresh)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
    assert not np.allclose(before, gan.generator.get_weights()[0])


def test_config_round_trip_and_bad_arguments():
    gan = build_egan(**TINY, mutations="heuristic,least_squares", parents=2, gamma=0.1,
                     fd_sign="plus", d_steps=3, fitness_batch=32)
    again = EGAN.from_config(gan.get_config())
    assert isinstance(again, DCGAN)
    assert (again.mutations, again.num_parents, again.gamma, again.fd_sign, again.d_steps,
            again.fitness_batch) == (("heuristic", "least_squares"), 2, 0.1, "plus", 3, 32)
    assert again.child_names == ["p0_heuristic", "p0_least_squares", "p1_heuristic",
                                 "p1_least_squares"]
    g, d = Generator(**TINY), Discriminator(16, 1, base_width=4)
    for kwargs, match in ((dict(mutations="sgd"), "distinct names"),
                          (dict(parents=0), "parents must be"),
                          (dict(gamma=-1.0), "gamma"), (dict(fd_sign="up"), "fd_sign")):
        with pytest.raises(ValueError, match=match):
            EGAN(g, d, **kwargs)
    gan = _egan(d_steps=3)
    with pytest.raises(ValueError, match=r"--batch_size=8 is not a multiple of egan_d_steps "
                                         r"x egan_parents = 3: .* Use 6 or 9, or 24 "):
        gan.train_step(_real(8))


@pytest.mark.parametrize("precision", ["none", "float16"])
def test_gpu_path_compiles_each_replica_generation_without_merge_call(precision, monkeypatch):
    """As tests/training/test_xla_mirrored.py for the DCGAN: traces what TensorFlow runs
    on all-GPU replicas with XLA (the device test patched to say GPU); the generation's
    assigns (selection, D's restored statistics, win counts) and its all-reduces must not
    need a merge_call, which an XLA replica step cannot make."""
    from tensorflow.python.distribute import mirrored_run, mirrored_strategy
    monkeypatch.setattr(mirrored_run, "_is_gpu_device", lambda device: True)
    monkeypatch.setattr(mirrored_strategy, "_is_gpu_device", lambda device: True)
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    strategy = tf.distribute.MirroredStrategy(devices)
    with train_lib.dtype_policy(train_lib.POLICIES[precision]), strategy.scope():
        gan = build_egan(**TINY, sync_batchnorm=True, parents=2, fitness_batch=16)
        gan.compile(*train_lib.make_optimizers(config_lib.TrainConfig(), precision),
                    jit_compile=True)
    assert gan.replica_jit_compile
    data = strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensor_slices(_real(24)).batch(
            ctx.get_per_replica_batch_size(24)).repeat())
    step = tf.function(lambda it: strategy.run(gan.train_step, args=(next(it),)))
    graph = step.get_concrete_function(iter(data)).graph
    ops = list(graph.as_graph_def().node) + [n for f in graph.as_graph_def().library.function
                                             for n in f.node_def]
    calls = [n for n in ops if n.attr["_XlaMustCompile"].b]
    assert sorted({tf.DeviceSpec.from_string(n.device).device_index for n in calls}) == [0, 1]


def test_keras_file_keeps_the_population_and_fit_continues_exactly(tmp_path):
    data = tf.data.Dataset.from_tensor_slices(_real(24)).batch(12)
    gan = _egan(parents=2)
    gan.fit(data, epochs=1, verbose=0)
    path = str(tmp_path / "egan.keras")
    gan.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, EGAN) and loaded.num_parents == 2
    for a, b in zip(egan_state(gan), egan_state(loaded)):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for model in (gan, loaded):
        model.fit(data, epochs=1, verbose=0)
    for a, b in zip(egan_state(gan), egan_state(loaded)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
