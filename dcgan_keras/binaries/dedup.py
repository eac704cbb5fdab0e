r"""Finds near-duplicate training images with the paper's semantic hash (section 4.1.1).

    python -m dcgan_keras.binaries.dedup --dataset=lsun --data_dir=~/lsun --workdir=runs/dedup
    python -m dcgan_keras.binaries.train --dataset=lsun --data_dir=~/lsun \
        --exclude_list=runs/dedup/exclude_list.txt --workdir=runs/lsun

Trains a 3072-128-3072 de-noising, dropout-regularised ReLU autoencoder on 32x32 centre
crops and thresholds each image's 128-d code into a binary hash. By default
(--match=verified) images whose hashes collide on any band (also shifted by one pixel)
are grouped if their codes are within --max_distance; --match=equal_hash is the paper's
rule as written (bit = ReLU code > --threshold, groups of equal hashes), which groups
many distinct images (see dcgan_keras/data/dedup/). Writes dedup.json (counts and
every group's ids), dedup_groups.png (example groups, one per row), exclude_list.txt (all
but the first of each group) and the autoencoder's weights into --workdir.
"""
from dcgan_keras.binaries import common  # noqa: F401  (sets TF logging first)

from absl import app, flags, logging

from dcgan_keras.data import datasets, lsun, preprocessing
from dcgan_keras.data.dedup import semantic_hash

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Where dedup.json, dedup_groups.png, exclude_list.txt "
                    "and autoencoder.weights.h5 go.")
flags.DEFINE_enum("dataset", "lsun", datasets.DATASET_NAMES, "The dataset to de-duplicate.")
flags.DEFINE_string("data_dir", "", "See the train binary.")
flags.DEFINE_string("lsun_category", lsun.DEFAULT_CATEGORY, "dataset=lsun: the category.")
flags.DEFINE_enum("split", "train", datasets.SPLITS, "The split to de-duplicate.")
flags.DEFINE_enum("preprocess", "crop_resize", preprocessing.PREPROCESS_MODES,
                  "How images become 32x32: the paper's centre crop + resize, or pad.")
flags.DEFINE_integer("epochs", 10, "Autoencoder training epochs.")
flags.DEFINE_integer("steps_per_epoch", 0, "Batches per epoch (0: one pass over the split).")
flags.DEFINE_integer("batch_size", 256, "Autoencoder batch size.")
flags.DEFINE_float("noise_stddev", 0.2, "De-noising: Gaussian noise on the [-1, 1] inputs.")
flags.DEFINE_float("dropout", 0.2, "Dropout on the input and on the code.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_float("threshold", 0.0, "--match=equal_hash: a code bit is 1 where the ReLU "
                   "activation exceeds it.")
flags.DEFINE_enum("match", "verified", ["verified", "equal_hash"],
                  "verified: hash collisions (banded, one-pixel-shift probes) checked by code "
                  "distance; equal_hash: the paper's groups of equal ReLU hashes.")
flags.DEFINE_float("max_distance", 0.04, "--match=verified: the largest distance between "
                   "two unit-length codes of near-duplicates.")
flags.DEFINE_integer("seed", 0, "Seed of the weights, the noise and the data order.")
flags.DEFINE_bool("allow_download", True, "Let tensorflow-datasets/Keras download missing data.")
flags.mark_flag_as_required("workdir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    try:
        for name in ("epochs", "batch_size"):
            if FLAGS[name].value < 1:
                raise ValueError(f"{name} must be >= 1, got {FLAGS[name].value}")
        if FLAGS.max_distance < 0:
            raise ValueError(f"max_distance must be >= 0, got {FLAGS.max_distance}")
        if not 0 <= FLAGS.dropout < 1 or FLAGS.noise_stddev < 0:
            raise ValueError(f"dropout must be in [0, 1) and noise_stddev >= 0, got "
                             f"{FLAGS.dropout} and {FLAGS.noise_stddev}")
        source = datasets.get_source(FLAGS.dataset, FLAGS.split, FLAGS.data_dir or None,
                                     FLAGS.allow_download, lsun_category=FLAGS.lsun_category)
        summary = semantic_hash.run(
            source, FLAGS.workdir, FLAGS.epochs, FLAGS.batch_size, FLAGS.steps_per_epoch,
            FLAGS.noise_stddev, FLAGS.dropout, FLAGS.learning_rate, FLAGS.threshold,
            FLAGS.seed, FLAGS.preprocess, FLAGS.match, FLAGS.max_distance)
    except (ValueError, FileNotFoundError) as e:  # MissingDataError is a FileNotFoundError
        common.fail(str(e))
    print(f"{summary['num_images']} images, {summary['num_groups']} groups of near-duplicates "
          f"(--match={FLAGS.match}), "
          f"{summary['num_excluded']} duplicates listed in {FLAGS.workdir}/exclude_list.txt; "
          f"examples: {FLAGS.workdir}/dedup_groups.png")


# --help lists the flags under these headings (the README's order).
HELP_GROUPS = {
    "data": ["dataset", "data_dir", "lsun_category", "split", "preprocess", "allow_download"],
    "model": ["noise_stddev", "dropout", "match", "max_distance", "threshold"],
    "optimisation": ["epochs", "steps_per_epoch", "batch_size", "learning_rate"],
    "run": ["workdir", "seed"],
}

if __name__ == "__main__":
    common.run(main, HELP_GROUPS)
