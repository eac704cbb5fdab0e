"""E-GAN: a population of generators evolved against one discriminator, as a keras.Model.

Wang et al. 2018 (arXiv:1803.00657), Algorithm 1. `EGAN` is a `DCGAN` with its own
`train_step`, so Keras' `fit`, the callbacks of `training.callbacks`, checkpoints, the
EMA generator and the exporters work unchanged: `generator` is the selected parent (the
fittest of the last generation), `g_optimizer` its Adam, `step` counts generations. Any
Keras generator and discriminator play (the package's DCGAN nets, or e.g. small MLPs on
2-D toy data); the other parents and the scratch child are `clone_network` copies.
"""
import keras
import tensorflow as tf

from dcgan_keras.evolution import batching
from dcgan_keras.evolution import mutations as mutations_lib
from dcgan_keras.models import dcgan, keras_compat, latent
from dcgan_keras.models.discriminator import Discriminator
from dcgan_keras.models.generator import Generator

# Defaults, repeated by config.py as the --egan_* defaults (tests/test_config_defaults.py
# keeps them equal). n_D = 3: what both author codebases run on images (Theano kD = 3 in
# cifar10/, bedroom/ and faces/; PyTorch scripts/train_egan_cifar10.sh --D_iters 3), each D
# step on its own 32 real images (see batching.py); the paper's Algorithm 1 lists n_D = 2,
# and the Theano 2-D toys use kD = 1. The fitness batch and gamma from the authors'
# CIFAR-10 Theano code (ntf = 256; beta 0.002 on log ||g||^2 is gamma 0.004 on log ||g||),
# one parent (mu = 1) as in the paper's experiments.
D_STEPS = 3
FITNESS_BATCH = 256
GAMMA = 0.004
PARENTS = 1


def _values(variables):
    """A snapshot (tensors) of variables; later assigns do not change it."""
    return [tf.identity(v.value if isinstance(v, keras.Variable) else v) for v in variables]


def _assign(variables, values):
    for variable, value in zip(variables, values):
        variable.assign(value)


@keras.saving.register_keras_serializable(package="dcgan_keras")
class EGAN(dcgan.DCGAN):
    """Evolutionary GAN (see the module doc and `evolution.mutations`).

    One `train_step` is one generation, on a global batch of B real images (B a multiple
    of d_steps x parents x replicas: `batching.check_batch_size`):
      1. D: `d_steps` updates, each on its own B / d_steps real images (as the authors'
         code gives each D step its own batch) and as many fakes, drawn evenly from the
         parents (Algorithm 1), with the DCGAN's D loss.
      2. variation: every parent makes one child per mutation: a copy of the parent and
         of its Adam state, updated once with that mutation's loss through the updated D
         on B / d_steps samples. The children of one parent share that batch of z, so
         they differ only by their objective (common random numbers).
      3. evaluation: F = F_q + gamma * F_d of each child on `fitness_batch` samples, all
         children on the same z; D's loss for F_d takes this generation's B real images.
         The evaluation leaves D (BatchNorm statistics included) as step 1 left it.
      4. selection: the `parents` fittest children, with their weights, BatchNorm
         statistics and Adam state, become the parents, fittest first: `generator`.

    Logged (fit's logs, and TensorBoard through `callbacks.TrainLogger`), per child (names
    from `child_names`): `F_<child>`, `Fq_<child>` and `Fd_<child>` (Keras metrics,
    averaged over the steps since the last reset); `selected`, the index in
    `child_names` of the fittest child of the last generation; `wins_<mutation>`, the
    survivors per mutation, and `diversity_decided`, the generations whose survivors
    under F differ from those F_q alone would keep (gamma F_d changed the choice), both
    counted from the start of the run (checkpointed, so a resumed run continues them).

    Under a tf.distribute strategy every replica makes the same children: gradients,
    F_q and F_d are reduced over all replicas (the global batch), so F and the selection
    are identical on every replica.

    Args:
        generator, discriminator: as for `DCGAN` (any Keras models: z -> sample and
            sample -> one logit); `generator` is parent 0, the other parents start as
            copies of it.
        seed: the noise seed.
        mutations: names from `mutations.MUTATIONS` (a sequence or "a,b,c").
        parents: mu, the survivors of each generation.
        d_steps: n_D, D updates per generation (default 3, the authors' code; see
            D_STEPS). Each takes B / d_steps of the batch: for the authors' 32 real images
            per D step, batch 96.
        gamma: weight of the diversity fitness.
        fd_sign: "minus" (the paper and both author codebases' latest versions) or
            "plus" (a superseded 2019 PyTorch release; see mutations.py).
        fitness_batch: generated samples per child evaluation (global, all replicas).
        ema_decay: as for `DCGAN` (an EMA of the selected generator).
        z_distribution: as for `DCGAN` (default: the generator's, else uniform).
    """

    def __init__(self, generator, discriminator, seed=0,
                 mutations=mutations_lib.DEFAULT_MUTATIONS, parents=PARENTS,
                 d_steps=D_STEPS, gamma=GAMMA, fd_sign="minus",
                 fitness_batch=FITNESS_BATCH, ema_decay=0.0, z_distribution=None, **kwargs):
        kwargs.setdefault("name", "egan")
        kwargs.pop("generator_loss", None)  # DCGAN's; the mutations replace it
        super().__init__(generator, discriminator, seed=seed, ema_decay=ema_decay,
                         z_distribution=z_distribution, **kwargs)
        self.mutations = mutations_lib.parse_mutations(mutations)
        for name, value in (("parents", parents), ("d_steps", d_steps),
                            ("fitness_batch", fitness_batch)):
            if int(value) != value or value < 1:
                raise ValueError(f"egan {name} must be an integer >= 1, got {value!r}")
        if not gamma >= 0:
            raise ValueError(f"egan gamma must be >= 0, got {gamma!r}")
        if fd_sign not in mutations_lib.FD_SIGNS:
            raise ValueError(f"egan fd_sign must be one of {sorted(mutations_lib.FD_SIGNS)}"
                             f", got {fd_sign!r}")
        self.num_parents, self.d_steps = int(parents), int(d_steps)
        self.gamma, self.fd_sign, self.fitness_batch = float(gamma), fd_sign, int(fitness_batch)
        with self.distribute_strategy.scope():
            self.parents = [self.generator] + [keras_compat.clone_network(self.generator)
                                               for _ in range(1, self.num_parents)]
            self.child = keras_compat.clone_network(self.generator)  # scratch: one at a time
        # Counters of the whole run; aggregation "none" as `step` (XLA-safe, see DCGAN).
        self.wins = self.add_weight(name="wins", shape=(len(self.mutations),), dtype="int64",
                                    initializer="zeros", trainable=False, aggregation="none")
        self.diversity_decided = self.add_weight(name="diversity_decided", shape=(),
                                                 dtype="int64", initializer="zeros",
                                                 trainable=False, aggregation="none")
        self.fitness_trackers, self.quality_trackers, self.diversity_trackers = (
            [keras.metrics.Mean(name=f"{prefix}_{name}") for name in self.child_names]
            for prefix in ("F", "Fq", "Fd"))
        self.parent_optimizers = []
        self.child_optimizer = None

    @property
    def child_names(self):
        """One name per child, in evaluation order: parent-major, then mutation."""
        if self.num_parents == 1:
            return list(self.mutations)
        return [f"p{j}_{name}" for j in range(self.num_parents) for name in self.mutations]

    @property
    def metrics(self):
        return (super().metrics + self.fitness_trackers + self.quality_trackers
                + self.diversity_trackers)

    def compile(self, d_optimizer=None, g_optimizer=None, jit_compile="auto", **kwargs):
        """As `DCGAN.compile`; `g_optimizer` becomes parent 0's Adam, and every other
        parent and the scratch child get an optimizer of the same configuration."""
        super().compile(d_optimizer, g_optimizer, jit_compile=jit_compile, **kwargs)
        with self.distribute_strategy.scope():
            self.parent_optimizers = [self.g_optimizer] + [
                self._copy_of_optimizer(p) for p in self.parents[1:]]
            self.child_optimizer = self._copy_of_optimizer(self.child)

    def _copy_of_optimizer(self, net):
        optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(self.g_optimizer))
        optimizer.build(net.trainable_variables)
        keras_compat.make_replica_local(optimizer.iterations)
        return optimizer

    def _state(self, net, optimizer):
        """Everything a generator carries between generations, in a fixed order: weights,
        BatchNorm statistics, the step count and slots of its optimizer (and loss scale).
        Left out: the optimizer's "only_first_replica" variables but `iterations` (the
        learning rate, a LossScaleOptimizer's unused outer counter), which never change
        in a step and which an XLA replica step could not assign."""
        return net.trainable_variables + net.non_trainable_variables + [
            v for v in optimizer.variables
            if v is optimizer.iterations or v.aggregation != "only_first_replica"]

    def checkpoint_extras(self):
        """The population beyond `generator`/`g_optimizer` and the run's counters, by
        name, for `training.callbacks.Checkpoint` (exact resume of the whole population)."""
        extras = {"egan_wins": self.wins, "egan_diversity_decided": self.diversity_decided}
        for i in range(1, self.num_parents):
            extras[f"egan_parent_{i}"] = self.parents[i]
            extras[f"egan_parent_{i}_optimizer"] = self.parent_optimizers[i]
        return extras

    def _check_batch(self, batch, replicas):
        if batch is not None:  # the per-replica batch: check the global one it came from
            batching.check_batch_size(batch * replicas, self.d_steps, self.num_parents,
                                      replicas)
        if self.fitness_batch % replicas:
            raise ValueError(f"egan fitness_batch {self.fitness_batch} must be divisible by "
                             f"the {replicas} replicas")

    @tf.autograph.experimental.do_not_convert
    def _train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data
        strategy = tf.distribute.get_strategy()
        replicas = strategy.num_replicas_in_sync
        self._check_batch(real.shape[0], replicas)
        m = tf.shape(real)[0] // self.d_steps  # per-replica D batch and child update batch
        self.d_updates(tf.split(real, self.d_steps), m, replicas, self.parents)
        quality, diversity, g_losses, children = self._variation_and_evaluation(
            real, m, replicas)
        fitness = mutations_lib.fitness(quality, diversity, self.gamma)
        order = mutations_lib.select(fitness, self.num_parents)
        by_quality = mutations_lib.select(quality, self.num_parents)
        self.diversity_decided.assign_add(tf.cast(
            tf.logical_not(mutations_lib.same_survivors(order, by_quality)), tf.int64))
        # Per state variable, that variable of every child: [children, *shape].
        stacked = [tf.stack(values) for values in zip(*children)]
        for i, parent in enumerate(self.parents):
            _assign(self._state(parent, self.parent_optimizers[i]),
                    [tf.gather(values, order[i]) for values in stacked])
        won = tf.math.floormod(order, len(self.mutations))
        self.wins.assign_add(tf.reduce_sum(tf.one_hot(won, len(self.mutations),
                                                      dtype=tf.int64), axis=0))
        self.step.assign_add(1)
        if self.ema_generator is not None:
            self._update_ema()
        self.g_loss_tracker.update_state(tf.gather(g_losses, order[0]))
        for trackers, values in ((self.fitness_trackers, fitness),
                                 (self.quality_trackers, quality),
                                 (self.diversity_trackers, diversity)):
            for tracker, value in zip(trackers, tf.unstack(values)):
                tracker.update_state(value)
        logs = {metric.name: metric.result() for metric in self.metrics}
        logs.update({f"wins_{name}": self.wins[h] for h, name in enumerate(self.mutations)})
        logs.update(selected=tf.cast(order[0], tf.int64),
                    diversity_decided=tf.convert_to_tensor(self.diversity_decided))
        return keras_compat.reducible_logs(logs)

    def _all_reduce(self, values, replicas):
        if replicas == 1:
            return values
        return tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, values)

    def _variation_and_evaluation(self, real, m, replicas):
        """Makes and scores every child; returns (F_q [children], F_d [children], the
        children's own mutation losses [children], each child's state as a list of
        tensors)."""
        D = self.discriminator
        d_vars = D.trainable_variables
        d_statistics = _values(D.non_trainable_variables)
        z_children = tf.split(self.noise(m * self.num_parents, stream=1), self.num_parents)
        z_fitness = self.noise(self.fitness_batch // replicas, stream=2)
        # L_D's real half is the same for every child: its gradient is taken once. Under
        # float16 the losses are scaled (D's loss scale) and the norm unscaled.
        scale = tf.cast(self.d_optimizer.scale_loss(tf.constant(1.0)), tf.float32)
        with tf.GradientTape() as tape:
            real_logits = D(real, training=True)
            real_loss = tf.reduce_sum(tf.nn.softplus(-tf.cast(real_logits, tf.float32)))
            real_loss = real_loss / tf.cast(tf.shape(real)[0] * replicas, tf.float32)
            scaled = real_loss * scale
        real_grads = self._all_reduce(tape.gradient(scaled, d_vars), replicas)
        child_state = self._state(self.child, self.child_optimizer)
        quality, diversity, g_losses, children = [], [], [], []
        for parent, optimizer, z in zip(self.parents, self.parent_optimizers, z_children):
            parent_state = _values(self._state(parent, optimizer))
            for name in self.mutations:
                _assign(child_state, parent_state)
                with tf.GradientTape() as tape:
                    logits = D(self.child(z, training=True), training=True)
                    g_loss = tf.reduce_sum(mutations_lib.MUTATIONS[name](logits))
                    g_loss = g_loss / tf.cast(m * replicas, tf.float32)
                    g_scaled = self.child_optimizer.scale_loss(g_loss)
                g_vars = self.child.trainable_variables
                self.child_optimizer.apply(tape.gradient(g_scaled, g_vars), g_vars)
                children.append(_values(child_state))  # before the evaluation pass
                f_q, f_d = self._fitness(z_fitness, real_grads, scale, replicas)
                quality.append(f_q)
                diversity.append(f_d)
                g_losses.append(self._all_reduce(g_loss, replicas))
        _assign(D.non_trainable_variables, d_statistics)
        return tf.stack(quality), tf.stack(diversity), tf.stack(g_losses), children

    def _fitness(self, z, real_grads, scale, replicas):
        """(F_q, F_d) of the scratch child over the global fitness batch."""
        fake = self.child(z, training=True)
        n = float(self.fitness_batch)
        with tf.GradientTape() as tape:
            logits = tf.cast(self.discriminator(fake, training=True), tf.float32)
            fake_loss = tf.reduce_sum(tf.nn.softplus(logits)) / n * scale
        grads = tape.gradient(fake_loss, self.discriminator.trainable_variables)
        quality = tf.reduce_sum(tf.sigmoid(logits)) / n
        quality, grads = self._all_reduce((quality, grads), replicas)
        norm = mutations_lib.gradient_norm([g + r for g, r in zip(grads, real_grads)]) / scale
        return quality, mutations_lib.diversity(norm, self.fd_sign)

    def get_config(self):
        config = super().get_config()
        config.pop("generator_loss")
        return {**config, "mutations": list(self.mutations), "parents": self.num_parents,
                "d_steps": self.d_steps, "gamma": self.gamma, "fd_sign": self.fd_sign,
                "fitness_batch": self.fitness_batch}


def build_egan(image_size=64, channels=3, z_dim=100, base_width=128, d_base_width=None,
               sync_batchnorm=False, seed=0, ema_decay=0.0, z_distribution=latent.PAPER,
               **egan_kwargs):
    """Builds G, D and the E-GAN from flat keyword arguments (call inside a strategy
    scope); `egan_kwargs` are EGAN's (mutations, parents, d_steps, gamma, fd_sign,
    fitness_batch)."""
    generator = Generator(image_size=image_size, channels=channels, z_dim=z_dim,
                          base_width=base_width, sync_batchnorm=sync_batchnorm,
                          z_distribution=z_distribution)
    discriminator = Discriminator(image_size=image_size, channels=channels,
                                  base_width=d_base_width or base_width,
                                  sync_batchnorm=sync_batchnorm)
    return EGAN(generator, discriminator, seed=seed, ema_decay=ema_decay, **egan_kwargs)
