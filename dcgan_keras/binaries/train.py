r"""Trains a DCGAN (Radford et al. 2016). The same command on an existing workdir resumes.

    python -m dcgan_keras.binaries.train --dataset=lsun --workdir=runs/lsun
    python -m dcgan_keras.binaries.train --dataset=fashion_mnist --image_size=32 \
        --channels=1 --workdir=runs/fmnist
    tensorboard --logdir=runs
"""
from dcgan_keras.binaries import common  # noqa: F401  (sets TF logging first)

import dataclasses
import sys

import tensorflow as tf  # already imported (quietly) by common
from absl import app, flags, logging

from dcgan_keras import config as config_lib
from dcgan_keras.binaries import egan_flags  # noqa: F401  (--trainer, --egan_*)
from dcgan_keras.data import datasets, preprocessing
from dcgan_keras.training import train_lib
from dcgan_keras.training.reliability import NonFiniteError
from dcgan_keras.utils import files

_D = config_lib.TrainConfig()
FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for config.json, checkpoints, samples and "
                    "TensorBoard events. An existing workdir is resumed.")
flags.DEFINE_enum("dataset", _D.dataset, datasets.DATASET_NAMES, "Training data.")
flags.DEFINE_string("data_dir", _D.data_dir, "Image folder (dataset=folder), IDX files "
                    "(mnist, fashion_mnist) or tensorflow_datasets directory.")
flags.DEFINE_string("lsun_category", _D.lsun_category, "dataset=lsun: the scene category "
                    "(<category>_train_lmdb), e.g. bedroom, church_outdoor, kitchen.")
flags.DEFINE_string("exclude_list", _D.exclude_list, "A text file of record ids to leave out "
                    "of training, one a line (e.g. exclude_list.txt of binaries.dedup).")
flags.DEFINE_integer("image_size", _D.image_size, "Power of two in [16, 256].")
flags.DEFINE_integer("channels", _D.channels, "1 (grayscale) or 3 (RGB).")
flags.DEFINE_enum("preprocess", _D.preprocess, preprocessing.PREPROCESS_MODES,
                  "crop_resize (the paper) or pad (small images centred without resampling).")
flags.DEFINE_integer("batch_size", _D.batch_size, "Global batch size (over all replicas).")
flags.DEFINE_integer("epochs", _D.epochs, "Passes over the training data.")
flags.DEFINE_integer("max_steps", _D.max_steps, "Stop after this many steps (0: --epochs).")
flags.DEFINE_integer("z_dim", _D.z_dim, "Latent size.")
flags.DEFINE_enum("z_distribution", _D.z_distribution, config_lib.Z_DISTRIBUTIONS,
                  "The prior of z: uniform, U(-1, 1) in every dimension (the paper's and its "
                  "code's), or normal, N(0, 1) (PyTorch's example). Samples, exports and "
                  "analyses of the run draw from it.")
flags.DEFINE_integer("base_width", _D.base_width, "Filters at the highest resolution (the "
                     "paper: 128; the PyTorch example: 64).")
flags.DEFINE_integer("d_base_width", _D.d_base_width, "D's base width (0: --base_width).")
flags.DEFINE_float("learning_rate", _D.learning_rate, "Adam learning rate of both nets.")
flags.DEFINE_float("beta1", _D.beta1, "Adam beta1.")
flags.DEFINE_float("beta2", _D.beta2, "Adam beta2.")
flags.DEFINE_float("adam_epsilon", _D.adam_epsilon,
                   "Adam epsilon (1e-8 as in the paper's code and PyTorch; Keras' is 1e-7).")
flags.DEFINE_enum("adam_epsilon_on", _D.adam_epsilon_on, config_lib.ADAM_EPSILON_ON,
                  "Where Adam adds epsilon: v_hat = sqrt(bias-corrected v) + eps (the paper's "
                  "Theano code, PyTorch); v = sqrt(v) + eps before the bias correction "
                  "(Keras, Torch7's optim.adam): up to ~32x larger in the first steps.")
flags.DEFINE_enum("generator_loss", _D.generator_loss,
                  ["nonsaturating", "minimax", "least_squares"], "G's loss.")
flags.DEFINE_integer("seed", _D.seed, "Seed of the weights, the noise and the data order.")
flags.DEFINE_enum("strategy", _D.strategy, config_lib.STRATEGIES,
                  "default: one device; mirrored: all local GPUs; multi_worker: TF_CONFIG; tpu.")
flags.DEFINE_string("tpu", _D.tpu, "TPU name or address (strategy=tpu).")
flags.DEFINE_bool("sync_batchnorm", _D.sync_batchnorm,
                  "BatchNorm statistics over the global batch across replicas.")
flags.DEFINE_enum("mixed_precision", _D.mixed_precision, config_lib.MIXED_PRECISION,
                  "none, bfloat16, float16 (with loss scaling) or auto (by hardware).")
flags.DEFINE_enum("jit_compile", _D.jit_compile, config_lib.JIT_COMPILE,
                  "XLA-compile the train step: false, true or auto.")
flags.DEFINE_integer("steps_per_execution", _D.steps_per_execution,
                     "Train steps per call into the graph.")
flags.DEFINE_bool("deterministic", _D.deterministic,
                  "Enable TensorFlow op determinism (bit-exact resume, slower).")
flags.DEFINE_integer("log_every", _D.log_every, "Steps between logged scalars.")
flags.DEFINE_integer("checkpoint_every", _D.checkpoint_every,
                     "Steps between checkpoints (also at every epoch end).")
flags.DEFINE_integer("keep_checkpoints", _D.keep_checkpoints, "Latest checkpoints kept.")
flags.DEFINE_integer("num_sample_images", _D.num_sample_images, "Images per sample grid.")
flags.DEFINE_enum("cache_images", _D.cache_images, config_lib.CACHE_IMAGES,
                  "Decode and preprocess the training split once and train from memory "
                  "(uint8): true, false, or auto (encoded files, i.e. folders and tfds, "
                  "whose decoded split takes <= 1 GiB and <= 1/8 of the RAM).")
flags.DEFINE_bool("allow_download", _D.allow_download,
                  "Let tensorflow-datasets/Keras download missing data.")
flags.DEFINE_integer("eval_every_epochs", _D.eval_every_epochs, "Compute FID and KID every "
                     "N epochs, log them and keep the best checkpoint by FID (0: never).")
flags.DEFINE_integer("eval_num_samples", _D.eval_num_samples, "Generated images per evaluation.")
flags.DEFINE_string("eval_feature_net", _D.eval_feature_net, "'inception' (local weights) or "
                    "a domain classifier workdir from dcgan_keras.binaries.train_classifier.")
flags.DEFINE_enum("eval_reference_split", _D.eval_reference_split, datasets.SPLITS,
                  "Real images the samples are compared with.")
flags.DEFINE_float("ema_decay", _D.ema_decay, "Keep an exponential moving average of G's "
                   "weights with this decay, e.g. 0.999 (0: off).")
flags.DEFINE_integer("d_steps", _D.d_steps, "D updates per G update (--trainer=dcgan), "
                     "each on batch_size / d_steps real images and as many fakes, then one "
                     "G update on batch_size / d_steps fresh z: the D/G schedule of an "
                     "E-GAN generation with --egan_d_steps=d_steps, for a fair baseline. "
                     "1: the paper's.")
flags.DEFINE_float("instance_noise", _D.instance_noise, "sigma of Gaussian noise added to "
                   "every image D sees, real and fake (pixels in [-1, 1]), annealed "
                   "linearly to 0 by --instance_noise_steps (Sonderby et al. 2016), so that "
                   "D cannot win early on details G cannot draw yet, e.g. flat colours and "
                   "hard edges (--dataset=shapes_random). 0: off, the paper's recipe.")
flags.DEFINE_integer("instance_noise_steps", _D.instance_noise_steps, "The step at which the "
                     "instance noise reaches 0 (0: the run's last step, from --epochs or "
                     "--max_steps).")
flags.DEFINE_string("profile_steps", _D.profile_steps, "'A,B': write a TensorBoard profile "
                    "of global steps A to B (tf.profiler; TensorBoard's Profile tab shows "
                    "each op's time), e.g. 20,25 to skip tracing and warm-up.")
flags.DEFINE_enum("on_nan", _D.on_nan, config_lib.ON_NAN, "A NaN/Inf loss: stop with an "
                  "error, or rollback to the last checkpoint with half the learning rate.")
flags.DEFINE_integer("max_rollbacks", _D.max_rollbacks, "Rollbacks allowed with "
                     "--on_nan=rollback before the run stops.")
flags.mark_flag_as_required("workdir")


def config_from_flags():
    """The run's config: the flags, or for an existing workdir its config.json with the
    flags given on the command line on top (architecture/data changes refused)."""
    names = [f.name for f in dataclasses.fields(config_lib.TrainConfig)]
    if not files.exists(config_lib.config_path(FLAGS.workdir)):
        return config_lib.TrainConfig(**{n: FLAGS[n].value for n in names})
    given = {n: FLAGS[n].value for n in names if FLAGS[n].present}
    config, changes = config_lib.resume_config(config_lib.load(FLAGS.workdir), given)
    for name, (old, new) in sorted(changes.items()):
        logging.info("changed: %s %r -> %r", name, old, new)
    return config


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    try:
        config = config_from_flags().validate()
        result = train_lib.train_and_evaluate(config, FLAGS.workdir)
    except (ValueError, OSError, NonFiniteError) as e:  # MissingDataError too
        common.fail(str(e))
    except tf.errors.PermissionDeniedError as e:
        common.fail(f"cannot write into --workdir={FLAGS.workdir}: {e.message}")
    if result["interrupted"]:
        print(f"stopped by signal {result['interrupted']} at step {result['step']}; a "
              "checkpoint was written there; run the same command to resume")
        sys.exit(128 + result["interrupted"])
    print(f"trained to step {result['step']}; samples: {FLAGS.workdir}/samples/, "
          f"TensorBoard: tensorboard --logdir={FLAGS.workdir}")


# --help lists the flags under these headings (the README's order).
HELP_GROUPS = {
    "data": ["dataset", "data_dir", "lsun_category", "exclude_list", "image_size", "channels",
             "preprocess", "cache_images", "allow_download"],
    "model": ["trainer", "z_dim", "z_distribution", "base_width", "d_base_width", "generator_loss",
              "sync_batchnorm", "ema_decay"],
    "optimisation": ["batch_size", "epochs", "max_steps", "d_steps", "instance_noise",
                     "instance_noise_steps", "learning_rate", "beta1", "beta2", "adam_epsilon",
                     "adam_epsilon_on", "mixed_precision", "jit_compile",
                     "steps_per_execution"],
    "run": ["workdir", "seed", "strategy", "tpu", "deterministic", "log_every",
            "checkpoint_every", "keep_checkpoints", "num_sample_images", "on_nan",
            "max_rollbacks", "profile_steps"],
    "evaluation": ["eval_every_epochs", "eval_num_samples", "eval_feature_net",
                   "eval_reference_split"],
    "E-GAN (--trainer=egan)": ["egan_mutations", "egan_parents", "egan_d_steps", "egan_gamma",
                               "egan_fd_sign", "egan_fitness_batch"],
}

if __name__ == "__main__":
    common.run(main, HELP_GROUPS)
