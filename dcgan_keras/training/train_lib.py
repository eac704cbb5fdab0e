"""train_and_evaluate(config, workdir): the whole DCGAN training run, top to bottom."""
import contextlib
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from dcgan_keras import config as config_lib
from dcgan_keras.data import datasets
from dcgan_keras.models import Generator, build_dcgan, dcgan
from dcgan_keras.training import checkpoints, hardware, strategies
from dcgan_keras.training.progress import Progress
from dcgan_keras.utils import images as image_utils

POLICIES = {"none": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy for the models built inside, then restores it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _crossed(before, after, every):
    return after // every > before // every


def make_optimizers(config, mixed_precision):
    """The paper's Adam for D and G; float16 gets dynamic loss scaling."""
    def adam():
        opt = dcgan.Adam(config.learning_rate, beta_1=config.beta1, beta_2=config.beta2,
                         epsilon=config.adam_epsilon, epsilon_on=config.adam_epsilon_on)
        return keras.optimizers.LossScaleOptimizer(opt) if mixed_precision == "float16" else opt
    return adam(), adam()


def replica_jit_compile(strategy, jit_compile):
    """`jit_compile`, or False (logged) where `strategy` cannot run an XLA replica step:
    several replicas that are not all GPUs (see strategies.xla_unsupported_reason)."""
    reason = strategies.xla_unsupported_reason(strategy) if jit_compile else None
    if reason:
        logging.warning("XLA (jit_compile) is off for this run, falling back to the plain "
                        "TensorFlow graph: %s", reason)
        return False
    return bool(jit_compile)


def make_train_loop(gan, strategy, jit_compile, after_step=None):
    """A tf.function running `num_steps` train_steps, each on every replica.

    Only the per-replica step is XLA-compiled; the loop around it (distributed iterator,
    `after_step`) stays a plain graph. On all-GPU replicas TensorFlow compiles one XLA
    cluster per replica with the gradient all-reduce (NCCL) inside it; on several
    non-GPU replicas it cannot, and the step falls back to the plain graph with a
    warning (`replica_jit_compile`).

    Args:
        after_step: optional function run after every step in cross-replica context
            (e.g. the EMA update of G's weights).
    """
    jit_compile = replica_jit_compile(strategy, jit_compile)
    replica_step = tf.function(gan.train_step, jit_compile=True) if jit_compile else gan.train_step

    @tf.function
    def loop(iterator, num_steps):
        for _ in tf.range(num_steps):
            strategy.run(replica_step, args=(next(iterator),))
            if after_step is not None:
                after_step()

    return loop


def make_ema(gan, decay):
    """A copy of G whose weights (BatchNorm statistics included) track an exponential
    moving average of G's; returns (ema_generator, update_fn). Build in strategy scope."""
    ema = Generator.from_config(gan.generator.get_config())
    ema.set_weights(gan.generator.get_weights())
    pairs = list(zip(ema.weights, gan.generator.weights))

    def update():
        for average, value in pairs:
            average.assign(decay * average + (1.0 - decay) * value)

    return ema, update


def make_evaluator(config):
    """The FID/KID evaluator of --eval_every_epochs (reference features cached)."""
    from dcgan_keras.evaluation import feature_nets, sample_quality  # only when asked
    net = feature_nets.load(config.eval_feature_net)
    real = sample_quality.reference_features(
        net, config.dataset, config.eval_reference_split, config.image_size,
        config.channels, config.preprocess, data_dir=config.data_dir or None,
        allow_download=config.allow_download)
    return sample_quality.Evaluator(net, real, config.eval_num_samples, config.seed)


def sample_noise(config):
    """The fixed z of every sample grid of a run (a function of the seed)."""
    rng = np.random.default_rng(config.seed + 1)
    return rng.standard_normal((config.num_sample_images, config.z_dim)).astype(np.float32)


def write_samples(generator, z, path, step, is_chief, tag="samples"):
    """Writes G(z) (inference mode) as a PNG grid and a TensorBoard image."""
    images = generator(z, training=False)
    grid = image_utils.make_grid(images.numpy())
    if is_chief:
        image_utils.write_png(path, grid)
        tf.summary.image(tag, grid[None], step=step)
    return grid


def evaluate(evaluator, generator, ema, step):
    """FID/KID of G (and of the EMA G), logged to TensorBoard as eval/*."""
    scores = evaluator(generator)
    if ema is not None:
        scores.update({f"{k}_ema": v for k, v in evaluator(ema).items()})
    for name, value in scores.items():
        tf.summary.scalar(f"eval/{name}", value, step=step)
    logging.info("step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return scores


def train_and_evaluate(config, workdir):
    """Trains a DCGAN as `config` says, in `workdir`; resumes if workdir has checkpoints.

    Writes workdir/config.json, TensorBoard events, samples/epoch_XXXX.png and
    checkpoints/ (both nets, both optimizers, step, data position, RNG seed; the EMA
    generator with --ema_decay). With --eval_every_epochs, FID/KID are logged and the
    checkpoint with the lowest FID is kept in best_checkpoint/ (see best.json).

    Returns:
        dict with the last logged metrics, `step` and `images_per_sec`.
    """
    config.validate()
    # First: MultiWorkerMirroredStrategy must be created before any other TensorFlow op.
    cluster = strategies.make_cluster(config.strategy, config.tpu)
    strategy = cluster.strategy
    os.makedirs(workdir, exist_ok=True)
    if os.path.exists(config_lib.config_path(workdir)):
        config_lib.check_resumable(config_lib.load(workdir), config)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)  # the initial weights come from the seed too
    choice = hardware.resolve(config.mixed_precision, config.jit_compile)
    choice.jit_compile = replica_jit_compile(strategy, choice.jit_compile)
    logging.info("mixed precision: %s, XLA: %s (%s)", choice.mixed_precision,
                 choice.jit_compile, choice.reason)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the "
                         f"{strategy.num_replicas_in_sync} replicas")

    index_cache = os.path.join(workdir, "data_index.json")  # written by the chief only
    source = datasets.get_source(
        config.dataset, "train", config.data_dir or None, config.allow_download,
        index_cache=index_cache if cluster.is_chief or os.path.exists(index_cache) else None)
    if datasets.should_cache(source, config.image_size, config.channels, config.cache_images):
        start = time.perf_counter()
        source = datasets.cached_source(source, config.image_size, config.channels,
                                        config.preprocess)
        logging.info("--cache_images: %d images decoded into memory in %.1fs",
                     source.num_examples, time.perf_counter() - start)
    steps_per_epoch = source.num_examples // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"dataset has {source.num_examples} examples, fewer than one batch "
                         f"of {config.batch_size}; lower --batch_size")
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    logging.info("%s: %d images (%d skipped), %d steps per epoch, training to step %d",
                 config.dataset, source.num_examples, source.skipped, steps_per_epoch,
                 total_steps)

    with dtype_policy(POLICIES[choice.mixed_precision]), strategy.scope():
        gan = build_dcgan(image_size=config.image_size, channels=config.channels,
                          z_dim=config.z_dim, base_width=config.base_width,
                          d_base_width=config.d_base_width, sync_batchnorm=config.sync_batchnorm,
                          seed=config.seed, generator_loss=config.generator_loss)
        gan.compile(*make_optimizers(config, choice.mixed_precision))
        ema, ema_update = make_ema(gan, config.ema_decay) if config.ema_decay else (None, None)
        ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"), gan,
                                        config.keep_checkpoints, cluster.is_chief,
                                        cluster.worker_index,
                                        extra={"ema_generator": ema} if ema else None)
        restored = ckpt.restore_latest()
    step = int(gan.step.numpy())
    examples_seen = int(ckpt.examples_seen.numpy())
    if restored:
        logging.info("resumed from %s at step %d", restored, step)
    if cluster.is_chief:
        config_lib.save(config, workdir)

    def dataset_fn(ctx):
        ds = datasets.train_dataset(
            source, config.image_size, config.channels, config.batch_size, seed=config.seed,
            start_example=examples_seen, num_shards=ctx.num_input_pipelines,
            shard_index=ctx.input_pipeline_id,
            per_replica_batch_size=ctx.get_per_replica_batch_size(config.batch_size),
            preprocess_mode=config.preprocess)
        logging.info("input pipeline %d of %d: per-replica batches of shape %s (global "
                     "batch %d over %d replicas)", ctx.input_pipeline_id,
                     ctx.num_input_pipelines, ds.element_spec.shape.as_list(),
                     config.batch_size, strategy.num_replicas_in_sync)
        return ds

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    loop = make_train_loop(gan, strategy, choice.jit_compile, ema_update)
    evaluator = make_evaluator(config) if config.eval_every_epochs else None
    best = checkpoints.BestKeeper(workdir, ckpt, cluster.is_chief) if evaluator else None
    writer = (tf.summary.create_file_writer(workdir) if cluster.is_chief
              else tf.summary.create_noop_writer())
    z_samples = sample_noise(config)
    samples_dir = os.path.join(workdir, "samples")
    progress = Progress(total_steps, steps_per_epoch, step)
    logs, images_per_sec = {}, 0.0
    window_start, window_step = time.perf_counter(), step

    with writer.as_default():
        if step == 0:
            write_samples(gan.generator, z_samples,
                          os.path.join(samples_dir, "epoch_0000.png"), 0, cluster.is_chief)
        while step < total_steps:
            num = min(config.steps_per_execution, total_steps - step)
            loop(iterator, tf.constant(num, tf.int32))
            before, step = step, step + num
            examples_seen += num * config.batch_size
            done = step == total_steps
            if _crossed(before, step, config.log_every) or done:
                logs = {m.name: float(m.result()) for m in gan.metrics}
                for m in gan.metrics:
                    m.reset_state()
                now = time.perf_counter()
                images_per_sec = (step - window_step) * config.batch_size / (now - window_start)
                window_start, window_step = now, step
                for name, value in logs.items():
                    tf.summary.scalar(f"train/{name}", value, step=step)
                tf.summary.scalar("train/images_per_sec", images_per_sec, step=step)
                progress.update(step, logs, images_per_sec)
            epoch_end = _crossed(before, step, steps_per_epoch)
            if epoch_end or done:
                name = (f"epoch_{step // steps_per_epoch:04d}.png" if epoch_end
                        else f"step_{step:08d}.png")
                write_samples(gan.generator, z_samples, os.path.join(samples_dir, name),
                              step, cluster.is_chief)
                if ema is not None:
                    write_samples(ema, z_samples, os.path.join(samples_dir, "ema_" + name),
                                  step, cluster.is_chief, tag="samples_ema")
            if _crossed(before, step, config.checkpoint_every) or epoch_end or done:
                ckpt.save(step, examples_seen)
            if evaluator and (_crossed(before, step, steps_per_epoch * config.eval_every_epochs)
                              or done):
                scores = evaluate(evaluator, gan.generator, ema, step)
                logs.update(scores)
                best.update(scores["fid"], step, examples_seen, scores)
        writer.flush()
    progress.close()
    fingerprint = strategies.weights_fingerprint(gan.generator, gan.discriminator)
    logging.info("worker %d of %d: final weights fingerprint %s at step %d",
                 cluster.worker_index, cluster.num_workers, fingerprint, step)
    return dict(logs, step=step, images_per_sec=images_per_sec, gan=gan,
                weights_fingerprint=fingerprint)
