"""GAN losses as pure functions of logits, per example (reduce them yourself).

All take and return float32; D(x) = sigmoid(logit). Written with softplus so that large
logits do not overflow: -log(sigmoid(l)) = softplus(-l), -log(1 - sigmoid(l)) = softplus(l).
"""
import tensorflow as tf


def _f32(x):
    return tf.cast(tf.reshape(x, [-1]), tf.float32)


def discriminator_loss(real_logits, fake_logits):
    """-log D(x) - log(1 - D(G(z))), per example (Goodfellow et al. 2014, eq. 1)."""
    return tf.nn.softplus(-_f32(real_logits)) + tf.nn.softplus(_f32(fake_logits))


def generator_loss_nonsaturating(fake_logits):
    """-log D(G(z)): the "heuristic" G loss that DCGAN trains with."""
    return tf.nn.softplus(-_f32(fake_logits))


def generator_loss_minimax(fake_logits):
    """log(1 - D(G(z))): the original minimax G loss (E-GAN's first mutation)."""
    return -tf.nn.softplus(_f32(fake_logits))


def generator_loss_least_squares(fake_logits):
    """(D(G(z)) - 1)^2 / 2 on the sigmoid output (LSGAN; E-GAN's third mutation)."""
    return 0.5 * tf.square(tf.sigmoid(_f32(fake_logits)) - 1.0)


GENERATOR_LOSSES = {
    "nonsaturating": generator_loss_nonsaturating,
    "minimax": generator_loss_minimax,
    "least_squares": generator_loss_least_squares,
}
