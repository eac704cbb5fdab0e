"""The adversarial model: a keras.Model whose train_step plays the DCGAN game."""
import keras
import tensorflow as tf

from dcgan_keras import losses
from dcgan_keras.models import keras_compat, latent
from dcgan_keras.models.adam import default_optimizer
from dcgan_keras.models.discriminator import Discriminator
from dcgan_keras.models.generator import Generator


def _replica_id():
    ctx = tf.distribute.get_replica_context()
    return 0 if ctx is None else ctx.replica_id_in_sync_group


def _shape(model, role, which):
    """A built model's one input or output shape, e.g. (None, 100); ValueError otherwise."""
    try:
        shape = getattr(model, f"{which}_shape")
    except (AttributeError, ValueError) as e:
        raise ValueError(f"the {role} has no known {which} shape ({str(e).splitlines()[0]}): "
                         f"give it a keras.Input, or build it, e.g. "
                         f"model.build((None, input_size)), before the GAN") from None
    if not isinstance(shape, tuple):  # a list: several inputs or outputs
        raise ValueError(f"the {role} must have one {which}, got shapes {shape}")
    return shape


def _check_networks(generator, discriminator):
    """z_dim of a generator z [B, z_dim] -> sample, after checking that its samples fit
    the discriminator and that the discriminator gives one logit per sample; any built
    Keras models (not only the package's Generator and Discriminator)."""
    z_shape = _shape(generator, "generator", "input")
    if len(z_shape) != 2 or z_shape[1] is None:
        raise ValueError(f"the generator must take z of shape (batch, z_dim), got input "
                         f"shape {z_shape}")
    sample, taken = (_shape(generator, "generator", "output")[1:],
                     _shape(discriminator, "discriminator", "input")[1:])
    if len(sample) != len(taken) or any(a is not None and b is not None and a != b
                                        for a, b in zip(sample, taken)):
        raise ValueError(f"the generator makes samples of shape {sample} but the "
                         f"discriminator takes {taken}; build both for the same sample "
                         f"shape (the package's nets: the same image_size and channels)")
    logit = _shape(discriminator, "discriminator", "output")
    if logit[1:] not in ((), (1,)):
        raise ValueError(f"the discriminator must return one logit per sample, shape "
                         f"(batch, 1) or (batch,), got {logit}")
    return int(z_shape[1])


@keras.saving.register_keras_serializable(package="dcgan_keras")
class DCGAN(keras_compat.OpensDataOnce, keras.Model):
    """Generator + discriminator trained by `train_step`.

    Per batch: one D update on a real and a fake batch (BatchNorm sees them separately, as
    in the paper's code), then one G update through the updated D with the same fake
    batch and `generator_loss` (non-saturating by default). With `d_steps` = k > 1 (the
    k of Goodfellow et al.'s Algorithm 1): k D updates, each on its own B / k real images
    and as many fakes, then one G update on B / k fresh z: the D/G schedule of an E-GAN
    generation with n_D = k, without the evolution (`evolution.EGAN`). Under a tf.distribute strategy
    each replica draws its own slice of the global batch's noise, losses
    are averaged over the global batch, and the optimizers sum the replicas' gradients.

    Noise is a pure function of (seed, step, replica): the `step` variable is part of the
    checkpoint, so a resumed run draws exactly the noise the uninterrupted run would have.

    The step is XLA-safe under MirroredStrategy on GPUs: no variable it assigns needs a
    `merge_call` (`step` and the optimizers' iteration counters are replica-local
    counters that every replica advances alike).

    Args:
        generator: a `Generator`, or any built Keras model z [B, z_dim] -> samples (a
            functional or Sequential model, e.g. an MLP to 2-D points), or its serialized
            config.
        discriminator: a `Discriminator`, or any built Keras model samples -> one logit
            per sample ([B, 1] or [B]), or its serialized config.
        seed: integer seed of the training noise.
        generator_loss: one of `losses.GENERATOR_LOSSES`.
        ema_decay: > 0 keeps an EMA copy of G (`enable_ema`).
        z_distribution: the prior z is drawn from (`latent.Z_DISTRIBUTIONS`). None: the
            generator's own `z_distribution` (the package's Generator carries it), else
            the paper's uniform. A generator with its own prior must be given that one.
        d_steps: D updates per G update (1: the paper's); the batch must divide by it.
        instance_noise: sigma of the Gaussian noise added to every image D sees, real and
            fake, in D's and G's steps (pixels in [-1, 1]), annealed linearly from this
            value at step 0 to 0 at `instance_noise_steps` (Sonderby et al. 2016, "Amortised
            MAP inference for image super-resolution", section 3.3; Arjovsky & Bottou
            2017): it makes the real and fake distributions overlap, so that D cannot win on
            details G cannot draw yet (flat colours, hard edges). 0: off, the paper's.
        instance_noise_steps: the step at which the noise reaches 0.
    """

    def __init__(self, generator, discriminator, seed=0, generator_loss="nonsaturating",
                 ema_decay=0.0, z_distribution=None, d_steps=1, instance_noise=0.0,
                 instance_noise_steps=0, **kwargs):
        kwargs.setdefault("name", "dcgan")
        super().__init__(**kwargs)
        if isinstance(generator, dict):
            generator = keras.saving.deserialize_keras_object(generator)
        if isinstance(discriminator, dict):
            discriminator = keras.saving.deserialize_keras_object(discriminator)
        z_dim = _check_networks(generator, discriminator)
        own = latent.of(generator)
        if z_distribution is None:
            z_distribution = own
        elif hasattr(generator, "z_distribution") and z_distribution != own:
            raise ValueError(f"the generator was built for z ~ {own}, but z_distribution="
                             f"{z_distribution!r}; pass z_distribution={own!r} or None")
        if generator_loss not in losses.GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of "
                             f"{sorted(losses.GENERATOR_LOSSES)}, got {generator_loss!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.seed = int(seed)
        self.generator_loss = generator_loss
        if int(d_steps) != d_steps or d_steps < 1:
            raise ValueError(f"d_steps must be an integer >= 1, got {d_steps!r}")
        self.d_steps = int(d_steps)
        if not instance_noise >= 0 or (instance_noise and not instance_noise_steps >= 1):
            raise ValueError(f"instance_noise must be >= 0 and, when on, instance_noise_steps "
                             f">= 1; got {instance_noise!r} and {instance_noise_steps!r}")
        self.instance_noise = float(instance_noise)
        self.instance_noise_steps = int(instance_noise_steps)
        self.z_dim = z_dim
        self.z_distribution = latent.check(z_distribution)
        # Aggregation "none": each replica adds 1 to its own copy (all stay equal); an
        # "only_first_replica" assign needs a merge_call, impossible inside XLA.
        self.step = self.add_weight(name="step", shape=(), dtype="int64",
                                    initializer="zeros", trainable=False,
                                    aggregation="none")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_x")  # mean D(x)
        self.d_fake_tracker = keras.metrics.Mean(name="d_g_z")  # mean D(G(z)) before the D step
        self.d_optimizer = None
        self.g_optimizer = None
        self.replica_jit_compile = False
        self._replica_step = None
        self.ema_decay = 0.0
        self.ema_generator = None
        if ema_decay:
            self.enable_ema(ema_decay)
        self.built = True

    def enable_ema(self, decay):
        """Keeps `ema_generator`, a copy of G whose weights (BatchNorm statistics included)
        follow an exponential moving average of G's, updated after every train step:
        ema = decay * ema + (1 - decay) * G. Starts from G's current weights.

        The update runs inside the replica step: every replica holds the same G, so each
        updates its own copy alike, with no cross-replica call (XLA-safe). Call outside
        `fit` (the `callbacks.EMAGenerator` callback does, in `set_model`); variables are
        made in this model's distribution strategy scope.
        """
        if not 0 < decay < 1:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        if self.ema_generator is None:
            with self.distribute_strategy.scope():
                ema = keras_compat.clone_network(self.generator)
                ema.trainable = False
            self.ema_generator = ema
        self.ema_decay = float(decay)
        self.train_function = None  # retrace: the step now updates the EMA too

    def _update_ema(self):
        decay = self.ema_decay
        for average, value in zip(self.ema_generator.weights, self.generator.weights):
            average.assign(decay * average + (1.0 - decay) * tf.cast(value, average.dtype))

    def call(self, z, training=False):
        return self.generator(z, training=training)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker,
                self.d_fake_tracker]

    def fit(self, x=None, *args, **kwargs):
        """keras.Model.fit. A tf.data input is taken in its own order (the pipeline
        shuffles it), without Keras' warning that its default shuffle=True is ignored."""
        datasets = (tf.data.Dataset, tf.distribute.DistributedDataset)
        if isinstance(x, datasets) and len(args) < 8:  # shuffle is fit's 9th argument
            kwargs.setdefault("shuffle", False)
        return super().fit(x, *args, **kwargs)

    def compile(self, d_optimizer=None, g_optimizer=None, jit_compile="auto", **kwargs):
        """Sets the two optimizers; the model has no `self.optimizer` and no compiled loss.

        Args:
            d_optimizer, g_optimizer: default: the paper's Adam each. Under a
                "mixed_float16" dtype policy a plain optimizer is wrapped in a
                `keras.optimizers.LossScaleOptimizer`.
            jit_compile: XLA for the train step (True, False or "auto": Keras' choice,
                on where a GPU is present). Only the per-replica step is compiled, not
                `strategy.run` around it: TensorFlow compiles one XLA cluster per GPU
                replica, the all-reduces inside it (see training.strategies).
            **kwargs: keras.Model.compile's steps_per_execution, run_eagerly.
        """
        if kwargs.get("optimizer") is not None or kwargs.get("loss") is not None:
            raise ValueError("DCGAN.compile takes d_optimizer and g_optimizer; its losses "
                             "are the GAN's own (generator_loss), so pass no optimizer= "
                             "or loss=")
        kwargs.update(optimizer=None, loss=None)
        super().compile(jit_compile=jit_compile, **kwargs)
        # Keras would XLA-compile strategy.run(train_step) as one function; compile the
        # replica step instead (identical on one device, the only way on several GPUs).
        self.replica_jit_compile = bool(self.jit_compile)
        self.jit_compile = False
        self._replica_step = (tf.function(self._train_step, jit_compile=True)
                              if self.replica_jit_compile else None)
        float16 = keras.config.dtype_policy().name == "mixed_float16"

        def prepare(optimizer):
            optimizer = optimizer or default_optimizer(fused=not float16)
            if float16 and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            return optimizer

        self.d_optimizer = prepare(d_optimizer)
        self.g_optimizer = prepare(g_optimizer)
        # Build the slots now (inside the caller's strategy scope), not lazily in the step.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)
        for optimizer in (self.d_optimizer, self.g_optimizer):
            keras_compat.make_replica_local(optimizer.iterations)

    def noise(self, batch_size, stream=0):
        """z [batch_size, z_dim] from the prior (`z_distribution`) for this
        replica, a function of (seed, step, stream).

        The noise of the whole global batch is drawn from one seed and each replica takes
        its own slice, so replicas draw different z and N replicas see exactly the z that
        one replica would see for the same global batch.
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        seed = tf.stack([tf.constant(self.seed, tf.int64),
                         tf.convert_to_tensor(self.step) * 4 + stream])
        z = latent.stateless([batch_size * replicas, self.z_dim], seed, self.z_distribution)
        if replicas == 1:
            return z
        start = tf.cast(_replica_id(), tf.int32) * batch_size
        return z[start:start + batch_size]

    def noise_chunks(self, batch_size, chunks, stream=0):
        """`chunks` z batches of [batch_size, z_dim] for this replica, from one draw on
        `stream`: chunk j is, over the replicas, the j-th global chunk of that draw (as
        `noise` slices one global batch), so a run's k-th D step sees the same z on any
        number of replicas."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        seed = tf.stack([tf.constant(self.seed, tf.int64),
                         tf.convert_to_tensor(self.step) * 4 + stream])
        z = latent.stateless([chunks * batch_size * replicas, self.z_dim], seed,
                             self.z_distribution)
        z = tf.reshape(z, [chunks, replicas, batch_size, self.z_dim])
        return tf.unstack(z[:, tf.cast(_replica_id(), tf.int32)] if replicas > 1 else z[:, 0])

    def instance_noise_sigma(self):
        """sigma of the instance noise at the current step (see the class doc)."""
        done = tf.cast(tf.convert_to_tensor(self.step), tf.float32) / self.instance_noise_steps
        return self.instance_noise * tf.maximum(0.0, 1.0 - done)

    def noisy(self, images, stream):
        """`images` (this replica's) plus the step's instance noise on `stream`, drawn
        for the global batch and sliced per replica as `noise`; unchanged when it is off."""
        if not self.instance_noise:
            return images
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        # Its own seeds: the z streams' [seed, 4 step + stream] would repeat their numbers.
        seed = tf.stack([tf.constant(self.seed * 64 + stream + 0x1F1F1F1F, tf.int64),
                         tf.convert_to_tensor(self.step)])
        shape = tf.shape(images)
        eps = tf.random.stateless_normal(
            tf.concat([[shape[0] * replicas], shape[1:]], 0), seed, dtype=tf.float32)
        if replicas > 1:
            start = tf.cast(_replica_id(), tf.int32) * shape[0]
            eps = eps[start:start + shape[0]]
        return images + tf.cast(self.instance_noise_sigma() * eps, images.dtype)

    @tf.autograph.experimental.do_not_convert  # no tensor-dependent Python flow
    def train_step(self, data):
        """One D update and one G update on a batch of real images (see the class doc)."""
        if self._replica_step is not None:
            return self._replica_step(data)
        return self._train_step(data)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        """D's losses on real images without updating anything (`evaluate`, validation).

        The fake half is G(z) in inference mode for z drawn from (seed, step) on its own
        noise stream, so an evaluation at a given step is deterministic; both nets run in
        inference mode (BatchNorm moving statistics). Logs the training metrics' names.
        """
        real = data[0] if isinstance(data, (tuple, list)) else data
        z = self.noise(tf.shape(real)[0], stream=3)
        real_logits = self.discriminator(real, training=False)
        fake_logits = self.discriminator(self.generator(z, training=False), training=False)
        self._track(losses.discriminator_loss(real_logits, fake_logits),
                    losses.GENERATOR_LOSSES[self.generator_loss](fake_logits),
                    real_logits, fake_logits)
        return keras_compat.reducible_logs({m.name: m.result() for m in self.metrics})

    def _track(self, d_per_example, g_per_example, real_logits, fake_logits):
        # This replica's means; the metric variables average them over replicas.
        self.d_loss_tracker.update_state(tf.reduce_mean(d_per_example))
        self.g_loss_tracker.update_state(tf.reduce_mean(g_per_example))
        self.d_real_tracker.update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.d_fake_tracker.update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))

    @tf.autograph.experimental.do_not_convert
    def _train_step(self, data):
        if isinstance(data, (tuple, list)):
            data = data[0]
        real = data
        if self.d_steps > 1:
            return self._train_step_k(real)
        batch = tf.shape(real)[0]
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        global_batch = tf.cast(batch * num_replicas, tf.float32)
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables

        z = self.noise(batch)
        with tf.GradientTape() as g_tape:
            fake = self.generator(z, training=True)

        real = self.noisy(real, stream=0)
        with g_tape:
            fake = self.noisy(fake, stream=1)  # D sees it so in both steps

        # D step: maximise log D(x) + log(1 - D(G(z))).
        with tf.GradientTape() as d_tape:
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(tf.stop_gradient(fake), training=True)
            d_per_example = losses.discriminator_loss(real_logits, fake_logits)
            d_loss = tf.reduce_sum(d_per_example) / global_batch
            d_scaled = self.d_optimizer.scale_loss(d_loss)
        self.d_optimizer.apply(d_tape.gradient(d_scaled, d_vars), d_vars)

        # G step through the updated D, reusing G's forward pass recorded on g_tape.
        with g_tape:
            g_logits = self.discriminator(fake, training=True)
            g_per_example = losses.GENERATOR_LOSSES[self.generator_loss](g_logits)
            g_loss = tf.reduce_sum(g_per_example) / global_batch
            g_scaled = self.g_optimizer.scale_loss(g_loss)
        self.g_optimizer.apply(g_tape.gradient(g_scaled, g_vars), g_vars)
        self.step.assign_add(1)
        if self.ema_generator is not None:
            self._update_ema()
        self._track(d_per_example, g_per_example, real_logits, fake_logits)
        return keras_compat.reducible_logs({m.name: m.result() for m in self.metrics})

    def _train_step_k(self, real):
        """`d_steps` D updates, then one G update on fresh z (see the class doc)."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if real.shape[0] is not None and real.shape[0] % self.d_steps:
            raise ValueError(f"a batch of {real.shape[0] * replicas} does not split into "
                             f"d_steps = {self.d_steps} D steps; use a multiple of "
                             f"{self.d_steps * replicas}")
        m = tf.shape(real)[0] // self.d_steps
        self.d_updates(tf.split(real, self.d_steps), m, replicas, [self.generator])
        g_vars = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = self.generator(self.noise(m, stream=1), training=True)
            logits = self.discriminator(self.noisy(fake, stream=2), training=True)
            g_per_example = losses.GENERATOR_LOSSES[self.generator_loss](logits)
            g_loss = tf.reduce_sum(g_per_example) / tf.cast(m * replicas, tf.float32)
            g_scaled = self.g_optimizer.scale_loss(g_loss)
        self.g_optimizer.apply(tape.gradient(g_scaled, g_vars), g_vars)
        self.step.assign_add(1)
        if self.ema_generator is not None:
            self._update_ema()
        self.g_loss_tracker.update_state(tf.reduce_mean(g_per_example))
        return keras_compat.reducible_logs({m.name: m.result() for m in self.metrics})

    def d_updates(self, real_chunks, m, replicas, generators):
        """One D update per chunk of real images (m each, per replica), each against m
        fakes drawn evenly from `generators` (noise stream 0, one draw for all steps)."""
        d_vars = self.discriminator.trainable_variables
        z_all = self.noise_chunks(m, len(real_chunks), stream=0)
        for j, (real, z) in enumerate(zip(real_chunks, z_all)):
            fake = tf.concat([g(zg, training=True) for g, zg in
                              zip(generators, tf.split(z, len(generators)))], axis=0)
            # Instance noise (off for E-GAN): streams 0, 1 | 3, 4 | ...; 2 is the G step's.
            real, fake = self.noisy(real, 3 * j), self.noisy(fake, 3 * j + 1)
            with tf.GradientTape() as tape:
                real_logits = self.discriminator(real, training=True)
                fake_logits = self.discriminator(fake, training=True)
                per_example = losses.discriminator_loss(real_logits, fake_logits)
                loss = tf.reduce_sum(per_example) / tf.cast(m * replicas, tf.float32)
                scaled = self.d_optimizer.scale_loss(loss)
            self.d_optimizer.apply(tape.gradient(scaled, d_vars), d_vars)
            self.d_loss_tracker.update_state(tf.reduce_mean(per_example))
            self.d_real_tracker.update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
            self.d_fake_tracker.update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))

    def get_config(self):
        return {
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "seed": self.seed,
            "generator_loss": self.generator_loss,
            "ema_decay": self.ema_decay,
            "z_distribution": self.z_distribution,
            "d_steps": self.d_steps,
            "instance_noise": self.instance_noise,
            "instance_noise_steps": self.instance_noise_steps,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_compile_config(self):
        if self.d_optimizer is None:
            return None
        return {
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "jit_compile": self.replica_jit_compile,
            "steps_per_execution": self.steps_per_execution,
        }

    def compile_from_config(self, config):
        self.compile(
            d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
            g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
            jit_compile=config.get("jit_compile", "auto"),
            steps_per_execution=config.get("steps_per_execution", 1))


def build_dcgan(image_size=64, channels=3, z_dim=100, base_width=128, d_base_width=None,
                sync_batchnorm=False, seed=0, generator_loss="nonsaturating", ema_decay=0.0,
                z_distribution=latent.PAPER, d_steps=1, instance_noise=0.0,
                instance_noise_steps=0):
    """Builds G, D and the DCGAN from flat keyword arguments (call inside a strategy scope)."""
    generator = Generator(image_size=image_size, channels=channels, z_dim=z_dim,
                          base_width=base_width, sync_batchnorm=sync_batchnorm,
                          z_distribution=z_distribution)
    discriminator = Discriminator(image_size=image_size, channels=channels,
                                  base_width=d_base_width or base_width,
                                  sync_batchnorm=sync_batchnorm)
    return DCGAN(generator, discriminator, seed=seed, generator_loss=generator_loss,
                 ema_decay=ema_decay, d_steps=d_steps, instance_noise=instance_noise,
                 instance_noise_steps=instance_noise_steps)
