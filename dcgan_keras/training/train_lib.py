"""train_and_evaluate(config, workdir): the whole DCGAN training run, top to bottom.

There is one training loop, Keras' own: `DCGAN.fit`, with the run's behaviour in the
callbacks of `training.monitoring` (samples, EMA, FID/KID and the best checkpoint,
TensorBoard scalars and progress) and `training.reliability` (the NaN guard,
checkpoints, SIGTERM/SIGINT, the rollback after a NaN), which a library user can pass to
`fit` as well (all of them: `training.callbacks`).
"""
import contextlib
import os

import keras
import tensorflow as tf
from absl import logging

from dcgan_keras import config as config_lib
from dcgan_keras import workdir as workdir_lib
from dcgan_keras.data import cache, datasets, pipeline
from dcgan_keras.evaluation import feature_nets, sample_quality
from dcgan_keras.evolution import build_egan
from dcgan_keras.models import Adam, build_dcgan, native_ops
from dcgan_keras.training import hardware, monitoring, reliability, strategies
from dcgan_keras.utils import files

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


def make_optimizers(config, mixed_precision):
    """The paper's Adam for D and G; float16 gets dynamic loss scaling (and Keras' Adam
    update, see `Adam`)."""
    float16 = mixed_precision == "float16"

    def adam():
        opt = Adam(config.learning_rate, beta_1=config.beta1, beta_2=config.beta2,
                   epsilon=config.adam_epsilon, epsilon_on=config.adam_epsilon_on,
                   fused=not float16)
        return keras.optimizers.LossScaleOptimizer(opt) if float16 else opt
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


def make_evaluator(config):
    """The FID/KID evaluator of --eval_every_epochs (reference features cached)."""
    net = feature_nets.load(config.eval_feature_net)
    real = sample_quality.reference_features(
        net, config.dataset, config.eval_reference_split, config.image_size,
        config.channels, config.preprocess, data_dir=config.data_dir or None,
        allow_download=config.allow_download)
    return sample_quality.Evaluator(net, real, config.eval_num_samples, config.seed)


def training_source(config, workdir, is_chief=True):
    """The Source the run trains on: `config`'s dataset (its data_dir, LSUN category and
    exclusion list), decoded into memory when --cache_images says so. The index of a
    folder or LMDB is cached in workdir/data_index.json (written by the chief only)."""
    index_cache = os.path.join(workdir, "data_index.json")
    source = datasets.get_source(
        config.dataset, "train", config.data_dir or None, config.allow_download,
        index_cache=index_cache if is_chief or tf.io.gfile.exists(index_cache) else None,
        lsun_category=config.lsun_category, exclude_list=config.exclude_list or None)
    return cache.maybe_cached(source, config.image_size, config.channels, config.preprocess,
                              config.cache_images)


def plan_fits(step, total_steps, steps_per_epoch):
    """The `fit` calls that train from `step` to `total_steps`, fit's epochs on the data's.

    At most three: the rest of a data epoch a run was stopped in, the whole epochs, and
    a last partial epoch (max_steps inside an epoch). Each is a dict of fit's
    `initial_epoch`, `epochs` and `steps_per_epoch`, plus `steps` (its total).
    """
    calls = []
    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        whole = (total_steps - step) // steps_per_epoch
        if offset or not whole:
            n = min(steps_per_epoch - offset, total_steps - step)
            calls.append(dict(initial_epoch=epoch, epochs=epoch + 1, steps_per_epoch=n, steps=n))
        else:
            n = whole * steps_per_epoch
            calls.append(dict(initial_epoch=epoch, epochs=epoch + whole,
                              steps_per_epoch=steps_per_epoch, steps=n))
        step += n
    return calls


def build_model(config, total_steps=1):
    """The adversarial model that --trainer names (call inside the strategy scope);
    `total_steps`: the run's last step, where instance noise ends unless the config says."""
    nets = dict(image_size=config.image_size, channels=config.channels, z_dim=config.z_dim,
                base_width=config.base_width, d_base_width=config.d_base_width,
                sync_batchnorm=config.sync_batchnorm, seed=config.seed,
                z_distribution=config.z_distribution)
    if config.trainer == "egan":
        return build_egan(**nets, mutations=config.egan_mutations,
                          parents=config.egan_parents, d_steps=config.egan_d_steps,
                          gamma=config.egan_gamma, fd_sign=config.egan_fd_sign,
                          fitness_batch=config.egan_fitness_batch)
    return build_dcgan(**nets, generator_loss=config.generator_loss, d_steps=config.d_steps,
                       instance_noise=config.instance_noise,
                       instance_noise_steps=config.instance_noise_steps or total_steps)


def make_callbacks(config, workdir, cluster, steps_per_epoch, total_steps, writer):
    """The run's callbacks, in the order they act at a step or epoch end: the NaN guard,
    log, samples, checkpoint, then FID/KID (which keeps the best checkpoint), and the
    SIGTERM/SIGINT handler."""
    chief = cluster.is_chief
    checkpoint = reliability.Checkpoint(
        os.path.join(workdir, "checkpoints"), config.batch_size, config.checkpoint_every,
        config.keep_checkpoints, chief, cluster.worker_index)
    run = [reliability.NonFiniteGuard()]
    run += [monitoring.EMAGenerator(config.ema_decay)] if config.ema_decay else []
    run += [
        monitoring.TrainLogger(config.batch_size, config.log_every, total_steps,
                               steps_per_epoch, writer, chief),
        monitoring.SampleGrid(os.path.join(workdir, "samples"),
                              num_images=config.num_sample_images, seed=config.seed,
                              steps_per_epoch=steps_per_epoch, summary_writer=writer,
                              is_chief=chief),
        checkpoint,
    ]
    if config.eval_every_epochs:
        run.append(monitoring.SampleQuality(
            make_evaluator(config), config.eval_every_epochs, steps_per_epoch, total_steps,
            checkpoint, workdir, writer, chief))
    profile = config_lib.parse_profile_steps(config.profile_steps)
    if profile:
        run.append(monitoring.ProfileSteps(workdir, *profile, is_chief=chief))
    run.append(reliability.GracefulStop(checkpoint))
    return run, checkpoint


def train_and_evaluate(config, workdir, extra_callbacks=()):
    """Trains a DCGAN as `config` says, in `workdir`; resumes if workdir has checkpoints.

    Writes workdir/config.json, TensorBoard events, samples/epoch_XXXX.png and
    checkpoints/ (both nets, both optimizers, step, data position, RNG seed; the EMA
    generator with --ema_decay). With --eval_every_epochs, FID/KID are logged and the
    checkpoint with the lowest FID is kept in best_checkpoint/ (see best.json).

    A NaN/Inf loss stops the run (NonFiniteError), or with on_nan="rollback" restores the
    last checkpoint and halves the learning rate, at most max_rollbacks times. SIGTERM or
    SIGINT writes a checkpoint at the current step and returns early (`interrupted`).

    Args:
        extra_callbacks: more Keras callbacks for `fit` (after the run's own).
    Returns:
        dict with the last logged metrics, `step`, `images_per_sec`, `gan`,
        `weights_fingerprint`, `rollbacks` and `interrupted` (the signal number or None).
    """
    config.validate()
    # First: MultiWorkerMirroredStrategy must be created before any other TensorFlow op.
    cluster = strategies.make_cluster(config.strategy, config.tpu)
    strategy = cluster.strategy
    if cluster.is_chief:  # only the chief writes into the workdir (others: scratch dirs)
        files.check_writable(workdir)  # read-only or full: say so before any work is done
    saved = None
    if tf.io.gfile.exists(config_lib.config_path(workdir)):
        saved = config_lib.load(workdir)
        config_lib.check_resumable(saved, config)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)  # the initial weights come from the seed too
    choice = hardware.resolve(config.mixed_precision, config.jit_compile)
    choice.jit_compile = replica_jit_compile(strategy, choice.jit_compile)
    logging.info("mixed precision: %s, XLA: %s (%s)", choice.mixed_precision,
                 choice.jit_compile, choice.reason)
    if choice.mixed_precision == "bfloat16" and not choice.jit_compile:
        # Builds it on the first run (~10 s) unless `make install` did.
        logging.info("native bfloat16 ops (batch norm + activation, im2col, col2im, LeakyReLU "
                     "gradient, kernel casts): %s",
                     native_ops.error() or "on (models/native_ops.py)")
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the "
                         f"{strategy.num_replicas_in_sync} replicas")

    source = training_source(config, workdir, cluster.is_chief)
    steps_per_epoch = source.num_examples // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"dataset has {source.num_examples} examples, fewer than one batch "
                         f"of {config.batch_size}; lower --batch_size")
    if steps_per_epoch % config.steps_per_execution:
        divisors = [d for d in range(2, min(steps_per_epoch, 64) + 1) if steps_per_epoch % d == 0]
        raise ValueError(f"steps_per_execution {config.steps_per_execution} must divide the "
                         f"{steps_per_epoch} steps of an epoch, so that executions end at "
                         f"epoch ends; use 1 or one of {divisors[:8]}")
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    logging.info("%s: %d images (%d skipped), %d steps per epoch, training to step %d",
                 config.dataset, source.num_examples, source.skipped, steps_per_epoch,
                 total_steps)

    writer = (tf.summary.create_file_writer(workdir) if cluster.is_chief
              else tf.summary.create_noop_writer())
    with dtype_policy(POLICIES[choice.mixed_precision]), strategy.scope():
        gan = build_model(config, total_steps)
        gan.compile(*make_optimizers(config, choice.mixed_precision),
                    jit_compile=choice.jit_compile,
                    steps_per_execution=config.steps_per_execution)
        callbacks, checkpoint = make_callbacks(config, workdir, cluster, steps_per_epoch,
                                               total_steps, writer)
        for callback in callbacks:  # fit does it again; now, so the EMA G is checkpointed
            callback.set_model(gan)
        restored = checkpoint.restore()
    step = int(gan.step.numpy())
    if restored:
        logging.info("resumed from %s at step %d", restored, step)
        if saved is not None and saved.learning_rate != config.learning_rate:
            # else the checkpoint's (which rollbacks may have lowered)
            reliability.set_learning_rate(gan, config.learning_rate)
    if cluster.is_chief:
        config_lib.save(config, workdir)
    if config.on_nan == "rollback" and not restored:
        checkpoint.save()  # step 0: where a NaN in the first epoch rolls back to

    def dataset_fn(ctx, start_step, num_steps):
        ds = pipeline.train_dataset(
            source, config.image_size, config.channels, config.batch_size, seed=config.seed,
            start_example=start_step * config.batch_size, num_shards=ctx.num_input_pipelines,
            shard_index=ctx.input_pipeline_id,
            per_replica_batch_size=ctx.get_per_replica_batch_size(config.batch_size),
            preprocess_mode=config.preprocess)
        logging.info("input pipeline %d of %d: per-replica batches of shape %s (global "
                     "batch %d over %d replicas)", ctx.input_pipeline_id,
                     ctx.num_input_pipelines, ds.element_spec.shape.as_list(),
                     config.batch_size, strategy.num_replicas_in_sync)
        # Exactly this call's steps: each step takes one batch per replica of the pipeline.
        replicas_per_pipeline = strategy.num_replicas_in_sync // ctx.num_input_pipelines
        return ds.take(num_steps * replicas_per_pipeline)

    def train():
        for call in plan_fits(int(gan.step.numpy()), total_steps, steps_per_epoch):
            start_step, num_steps = int(gan.step.numpy()), call.pop("steps")
            data = strategy.distribute_datasets_from_function(
                lambda ctx: dataset_fn(ctx, start_step, num_steps))
            gan.fit(data, callbacks=callbacks + list(extra_callbacks), verbose=0,
                    shuffle=False, **call)
            if stop.signum is not None:
                return

    stop = next(c for c in callbacks if isinstance(c, reliability.GracefulStop))
    rollbacks = reliability.train_with_rollback(train, gan, checkpoint, config.on_nan,
                                                config.max_rollbacks)
    writer.flush()
    if stop.signum is not None:
        logging.warning("stopped by signal %d at step %d; checkpoint written; the same "
                        "command resumes", stop.signum, int(gan.step.numpy()))
    step = int(gan.step.numpy())
    fingerprint = workdir_lib.weights_fingerprint(gan.generator, gan.discriminator)
    logging.info("worker %d of %d: final weights fingerprint %s at step %d",
                 cluster.worker_index, cluster.num_workers, fingerprint, step)
    logger = next(c for c in callbacks if isinstance(c, monitoring.TrainLogger))
    scores = next((c.history[-1][1] for c in callbacks
                   if isinstance(c, monitoring.SampleQuality) and c.history), {})
    return dict(logger.logs, **scores, step=step, images_per_sec=logger.images_per_sec,
                gan=gan, weights_fingerprint=fingerprint, rollbacks=rollbacks,
                interrupted=stop.signum)
