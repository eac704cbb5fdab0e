"""Losses against NumPy references (Goodfellow et al. 2014; Mao et al. 2017)."""
import numpy as np

from dcgan_keras import losses


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


LOGITS = np.linspace(-6, 6, 25).astype(np.float32)
OTHER = np.linspace(5, -7, 25).astype(np.float32)


def test_discriminator_loss_matches_binary_cross_entropy():
    expected = -np.log(_sigmoid(LOGITS)) - np.log(1 - _sigmoid(OTHER))
    np.testing.assert_allclose(losses.discriminator_loss(LOGITS, OTHER).numpy(), expected,
                               rtol=1e-5, atol=1e-6)


def test_generator_losses_match_numpy():
    d = _sigmoid(LOGITS.astype(np.float64))
    np.testing.assert_allclose(losses.generator_loss_nonsaturating(LOGITS).numpy(),
                               -np.log(d), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(losses.generator_loss_minimax(LOGITS).numpy(),
                               np.log(1 - d), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(losses.generator_loss_least_squares(LOGITS).numpy(),
                               0.5 * (d - 1) ** 2, rtol=1e-5, atol=1e-7)


def test_known_values_and_stability():
    # D undecided (logit 0): -2 log(1/2) for D, log 2 for G.
    np.testing.assert_allclose(losses.discriminator_loss([0.0], [0.0]).numpy(), [2 * np.log(2)],
                               rtol=1e-6)
    np.testing.assert_allclose(losses.generator_loss_nonsaturating([0.0]).numpy(), [np.log(2)],
                               rtol=1e-6)
    # Huge logits: finite values, no overflow.
    big = np.array([-1e4, 1e4], np.float32)
    assert np.all(np.isfinite(losses.discriminator_loss(big, big).numpy()))
    np.testing.assert_allclose(losses.generator_loss_nonsaturating(big).numpy(), [1e4, 0.0])


def test_losses_take_column_logits_and_low_precision():
    col = LOGITS.reshape(-1, 1).astype(np.float16)
    out = losses.generator_loss_nonsaturating(col)
    assert out.shape == (25,) and out.dtype.name == "float32"
