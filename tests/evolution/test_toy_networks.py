"""E-GAN (and the DCGAN) with any Keras networks: MLPs on the authors' 2-D toy data (a ring
of 8 Gaussians, toys/train_toy_8G.py), a Sequential generator, and an exact resume."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from testutil import egan_state
from dcgan_keras.evolution import EGAN
from dcgan_keras.models import DCGAN, Discriminator, Generator
from dcgan_keras.training import callbacks

BATCH = 48  # a multiple of d_steps x parents = 3 x 2


def _ring(n, seed=0):
    """n points from 8 Gaussians (sd 0.02) on a circle of radius 2, scaled by 1/1.414,
    as the authors' toy_dataset('8gaussians')."""
    rng = np.random.default_rng(seed)
    angle = rng.integers(0, 8, n) * np.pi / 4
    points = 2.0 * np.stack([np.cos(angle), np.sin(angle)], 1) + rng.normal(0, 0.02, (n, 2))
    return (points / 1.414).astype("float32")


def _mlp(inputs, outputs, batch_norm=False, width=32):
    x = keras.Input((inputs,))
    h = x
    for i in range(2):
        h = keras.layers.Dense(width, activation="relu", name=f"fc{i}")(h)
        if batch_norm:  # as the authors' toy D; its moving statistics must survive too
            h = keras.layers.BatchNormalization(name=f"bn{i}")(h)
    return keras.Model(x, keras.layers.Dense(outputs, name="out")(h))


def _egan(seed=0, generator=None, **kwargs):
    keras.utils.set_random_seed(seed)
    gan = EGAN(generator or _mlp(2, 2), _mlp(2, 1, batch_norm=True),
               **{"fitness_batch": 64, **kwargs})
    gan.compile()
    return gan


def _data(generations, start=0):
    """Batches start, start + 1, ... of one fixed stream of points."""
    points = _ring(BATCH * 8)[BATCH * start:BATCH * (start + generations)]
    return tf.data.Dataset.from_tensor_slices(points).batch(BATCH)


def test_an_mlp_pair_evolves_on_the_ring_of_gaussians():
    gan = _egan()
    before = [w.copy() for w in gan.generator.get_weights()]
    history = gan.fit(_data(6), epochs=1, verbose=0).history
    assert (gan.z_dim, gan.z_distribution) == (2, "uniform")  # a plain model: the paper's
    for name in ["d_loss", "g_loss"] + [f"{f}_{m}" for f in ("F", "Fq", "Fd")
                                        for m in gan.mutations]:
        assert np.isfinite(history[name]).all(), name
    assert 0 < history["Fq_heuristic"][-1] < 1  # a mean of D's probabilities
    assert gan.wins.numpy().sum() == 6 and int(gan.step.numpy()) == 6
    after = gan.generator.get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    # The other networks are copies of the same architecture, not the package's classes.
    assert type(gan.child) is type(gan.generator)
    points = gan.generator(gan.noise(5), training=False).numpy()
    assert points.shape == (5, 2) and np.isfinite(points).all()


def test_resume_from_a_checkpoint_is_exact(tmp_path):
    """N generations, a checkpoint, a fresh E-GAN restored from it and M more generations
    end bit for bit where N + M uninterrupted generations end (two parents, so the
    population beyond `generator` is in the checkpoint too)."""
    n, m = 3, 2
    straight = _egan(parents=2)
    straight.fit(_data(n + m), epochs=1, verbose=0)

    first = _egan(parents=2)
    first.fit(_data(n), epochs=1, verbose=0,
              callbacks=[callbacks.Checkpoint(str(tmp_path), BATCH, every_n_steps=0)])
    resumed = _egan(seed=1, parents=2)  # other initial weights: the restore must set them
    restore = callbacks.Checkpoint(str(tmp_path), BATCH)
    restore.set_model(resumed)
    assert restore.restore().endswith(f"ckpt-{n}")
    assert int(resumed.step.numpy()) == n
    resumed.fit(_data(m, start=n), epochs=1, verbose=0)

    assert int(straight.step.numpy()) == int(resumed.step.numpy()) == n + m
    for a, b in zip(egan_state(straight), egan_state(resumed)):
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=a.path)
    # The population moved after the restore, so the comparison can fail.
    assert not np.array_equal(first.parents[1].get_weights()[0],
                              resumed.parents[1].get_weights()[0])


def test_a_sequential_generator_works_with_parents_ema_and_a_config_round_trip():
    keras.utils.set_random_seed(0)
    generator = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(2)])
    gan = _egan(generator=generator, parents=2, ema_decay=0.5)
    before = generator.get_weights()
    history = gan.fit(_data(2), epochs=1, verbose=0).history
    assert all(isinstance(net, keras.Sequential)
               for net in gan.parents + [gan.child, gan.ema_generator])
    assert np.isfinite(history["g_loss"]).all()
    assert not np.array_equal(before[0], gan.generator.get_weights()[0])
    # EMA with decay 0.5 after two generations: neither the start nor the selected G.
    ema = gan.ema_generator.get_weights()[0]
    assert not np.allclose(ema, before[0]) and not np.allclose(ema, gan.generator.get_weights()[0])
    again = EGAN.from_config(gan.get_config())
    assert isinstance(again.generator, keras.Sequential) and again.num_parents == 2
    assert (again.z_dim, again.z_distribution) == (3, "uniform")


def test_the_dcgan_trains_the_same_mlps():
    keras.utils.set_random_seed(0)
    gan = DCGAN(_mlp(2, 2), _mlp(2, 1, batch_norm=True))
    gan.compile()
    before = gan.generator.get_weights()[0].copy()
    history = gan.fit(_ring(64), batch_size=32, epochs=1, verbose=0).history
    assert np.isfinite(history["d_loss"]).all() and np.isfinite(history["g_loss"]).all()
    assert not np.array_equal(before, gan.generator.get_weights()[0])


def test_the_prior_of_z_for_networks_without_one():
    gan = EGAN(_mlp(2, 2), _mlp(2, 1), z_distribution="normal")
    z = gan.noise(2000).numpy()
    assert np.abs(z).max() > 1.5 and abs(z.std() - 1) < 0.05  # N(0, 1), not U(-1, 1)
    assert EGAN.from_config(gan.get_config()).z_distribution == "normal"
    z = EGAN(_mlp(2, 2), _mlp(2, 1)).noise(2000).numpy()
    assert np.abs(z).max() <= 1 and abs(z.std() - 1 / np.sqrt(3)) < 0.02  # U(-1, 1)
    # The package's Generator carries its prior: a different one is refused.
    tiny = dict(image_size=16, channels=1, z_dim=8, base_width=4)
    with pytest.raises(ValueError, match="built for z ~ uniform"):
        DCGAN(Generator(**tiny), Discriminator(16, 1, base_width=4), z_distribution="normal")
    assert DCGAN(Generator(**tiny, z_distribution="normal"),
                 Discriminator(16, 1, base_width=4)).z_distribution == "normal"


@pytest.mark.parametrize("generator, discriminator, match", [
    (lambda: keras.Sequential([keras.layers.Dense(2)]), lambda: _mlp(2, 1),
     "generator has no known input shape"),
    (lambda: _mlp(2, 3), lambda: _mlp(2, 1), r"samples of shape \(3,\) but the "
                                             r"discriminator takes \(2,\)"),
    (lambda: _mlp(2, 2), lambda: _mlp(2, 4), "one logit per sample"),
])
def test_networks_that_cannot_play_are_refused_with_the_reason(generator, discriminator,
                                                               match):
    with pytest.raises(ValueError, match=match):
        EGAN(generator(), discriminator())
