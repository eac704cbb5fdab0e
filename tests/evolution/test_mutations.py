"""E-GAN's mutations, fitness and selection as pure functions, against NumPy."""
import numpy as np
import pytest
import tensorflow as tf

from dcgan_keras.evolution import mutations

LOGITS = np.array([-30.0, -3.0, -0.5, 0.0, 0.7, 4.0, 25.0], np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


@pytest.mark.parametrize("name, reference", [
    # The paper's equations (Wang et al. 2018, section 3.2), on D = sigmoid(logit).
    ("minimax", lambda d: 0.5 * np.log1p(-d)),
    ("heuristic", lambda d: -0.5 * np.log(d)),
    ("least_squares", lambda d: (d - 1.0) ** 2),
])
def test_each_mutation_matches_numpy(name, reference):
    got = mutations.MUTATIONS[name](tf.constant(LOGITS)).numpy()
    d = _sigmoid(LOGITS)
    finite = (d > 0) & (d < 1)  # float64 rounds sigmoid(25) to 1 - 1e-11: log1p is fine
    np.testing.assert_allclose(got[finite], reference(d[finite]), rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(got))  # softplus form: no log(0) at saturated logits


def test_mutation_gradients_point_the_same_way_with_different_sizes():
    """All three raise D(G(z)); minimax saturates where D is sure the sample is fake."""
    logits = tf.Variable([-6.0])
    grads = {}
    for name, fn in mutations.MUTATIONS.items():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(fn(logits))
        grads[name] = float(tape.gradient(loss, logits)[0])
    assert all(g < 0 for g in grads.values())
    assert abs(grads["minimax"]) < 0.01 * abs(grads["heuristic"])


def test_parse_mutations():
    assert mutations.parse_mutations("minimax, least_squares") == ("minimax", "least_squares")
    for bad in ("", "minimax,minimax", "wasserstein"):
        with pytest.raises(ValueError, match="distinct names"):
            mutations.parse_mutations(bad)


def test_fd_matches_a_hand_computed_gradient_norm_on_a_tiny_discriminator():
    """A linear D, logit = x.w + b: dL_D/dw and dL_D/db in closed form (NumPy)."""
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(5, 3)), rng.normal(1.0, 1.0, size=(7, 3))
    w, b = rng.normal(size=3), 0.3
    # L_D = mean(-log s(l_r)) + mean(-log(1 - s(l_f))):  dL/dl_r = s - 1, dL/dl_f = s.
    dr, df = _sigmoid(real @ w + b) - 1.0, _sigmoid(fake @ w + b)
    grad_w = real.T @ dr / len(real) + fake.T @ df / len(fake)
    grad_b = dr.mean() + df.mean()
    norm = np.sqrt(np.sum(grad_w ** 2) + grad_b ** 2)

    w_var, b_var = tf.Variable(w, dtype=tf.float32), tf.Variable(b, dtype=tf.float32)
    with tf.GradientTape() as tape:
        l_r = tf.linalg.matvec(tf.constant(real, tf.float32), w_var) + b_var
        l_f = tf.linalg.matvec(tf.constant(fake, tf.float32), w_var) + b_var
        loss = (tf.reduce_mean(tf.nn.softplus(-l_r)) + tf.reduce_mean(tf.nn.softplus(l_f)))
    got = mutations.gradient_norm(tape.gradient(loss, [w_var, b_var]))
    assert float(got) == pytest.approx(norm, rel=1e-5)
    quality = _sigmoid(fake @ w + b).mean()
    for sign, s in (("minus", -1.0), ("plus", 1.0)):
        f_d = mutations.diversity(got, sign)
        assert float(f_d) == pytest.approx(s * np.log(norm), rel=1e-5)
        f = mutations.fitness(tf.constant(quality, tf.float32), f_d, 0.5)
        assert float(f) == pytest.approx(quality + 0.5 * s * np.log(norm), rel=1e-5)


def test_select_keeps_the_fittest_fittest_first():
    f = tf.constant([0.2, 0.9, -1.0, 0.5, 0.9])
    assert mutations.select(f, 1).numpy().tolist() == [1]
    assert mutations.select(f, 3).numpy().tolist() == [1, 4, 3]  # tie: lower index first


def test_same_survivors_compares_the_kept_children_in_any_order():
    assert bool(mutations.same_survivors(tf.constant([2]), tf.constant([2])))
    assert not bool(mutations.same_survivors(tf.constant([2]), tf.constant([0])))
    assert bool(mutations.same_survivors(tf.constant([3, 1]), tf.constant([1, 3])))
    assert not bool(mutations.same_survivors(tf.constant([3, 1]), tf.constant([3, 0])))
