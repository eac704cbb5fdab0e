"""E-GAN's mutations, fitness and selection as pure functions.

Wang, Xu, Yao & Tao, "Evolutionary Generative Adversarial Networks" (arXiv:1803.00657,
IEEE TEVC 2019), section 3. D(x) = sigmoid(logit); every function takes logits and
returns float32.

Mutations (the objective a child is made with, one generator update each, minimised):
    minimax        M = 1/2 E_z[log(1 - D(G(z)))]
    heuristic      M = -1/2 E_z[log D(G(z))]         (non-saturating)
    least_squares  M = E_z[(D(G(z)) - 1)^2]          (on D's probability, as the paper)
The factors are the paper's. They matter beyond the gradient's direction: a child
inherits its parent's Adam moments, which earlier generations' winners (maybe of other
mutations) accumulated.

Fitness F = F_q + gamma * F_d on a fitness batch:
    F_q = E_z[D(G(z))]                                   (quality)
    F_d = sign * log || grad_D L_D ||                    (diversity)
with L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))], D's own loss, and its gradient taken
with respect to D's parameters.
    "minus" (default): F_d = -log ||grad||, the paper's equation, its Theano code
        (`fit = fr_score - fd_score`, fd_score = beta log ||grad||^2) and the latest
        PyTorch code (WANG-Chaoyue/EvolutionaryGAN-pytorch, models/egan_model.py:
        `Fd = -torch.log(torch.norm(allgrad))`, `F = Fq + lambda_f * Fd`). A child whose
        samples are spread out leaves D less able to overfit them, so D's gradient is
        small and the fitness high: the paper's stated intent.
    "plus": F_d = +log ||grad||, which only a superseded 2019 release of the PyTorch code
        computed (that release also took F_q from raw logits); kept for comparison.
"""
import tensorflow as tf

from dcgan_keras import losses


def minimax(fake_logits):
    """1/2 log(1 - D(G(z))), per example."""
    return 0.5 * losses.generator_loss_minimax(fake_logits)


def heuristic(fake_logits):
    """-1/2 log D(G(z)), per example."""
    return 0.5 * losses.generator_loss_nonsaturating(fake_logits)


def least_squares(fake_logits):
    """(D(G(z)) - 1)^2, per example."""
    return 2.0 * losses.generator_loss_least_squares(fake_logits)


MUTATIONS = {"minimax": minimax, "heuristic": heuristic, "least_squares": least_squares}
DEFAULT_MUTATIONS = ("minimax", "heuristic", "least_squares")
FD_SIGNS = {"minus": -1.0, "plus": 1.0}


def parse_mutations(names):
    """A tuple of mutation names from a sequence or a comma-separated string; checked."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = tuple(names)
    unknown = [n for n in names if n not in MUTATIONS]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"egan mutations must be distinct names from {sorted(MUTATIONS)}, "
                         f"comma-separated, got {','.join(names)!r}")
    return names


def gradient_norm(gradients):
    """|| g ||_2 over a list of gradient tensors (all of D's parameters), float32."""
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(g, tf.float32)))
                             for g in gradients]))


def diversity(grad_norm, fd_sign="minus"):
    """F_d = sign * log ||grad_D L_D|| (see the module doc)."""
    return FD_SIGNS[fd_sign] * tf.math.log(grad_norm)


def fitness(quality, diversity_value, gamma):
    """F = F_q + gamma * F_d, the fitness a child is selected by."""
    return quality + gamma * diversity_value


def select(fitness_values, num_parents):
    """Indices of the `num_parents` fittest children, fittest first (ties: lower index)."""
    return tf.math.top_k(fitness_values, k=num_parents, sorted=True).indices


def same_survivors(selected, other):
    """Whether two selections (index vectors of equal length) keep the same children, in
    any order: False when F_d changed who survives compared with F_q alone."""
    return tf.reduce_all(tf.equal(tf.sort(selected), tf.sort(other)))
