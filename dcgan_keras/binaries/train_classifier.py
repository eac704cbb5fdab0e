r"""Trains the domain classifier whose features make FID/KID measurable offline.

    python -m dcgan_keras.binaries.train_classifier --dataset=fashion_mnist \
        --image_size=32 --channels=1 --epochs=5 --workdir=runs/fmnist_classifier
    python -m dcgan_keras.binaries.evaluate --workdir=runs/fmnist \
        --eval=fid,kid --feature_net=runs/fmnist_classifier
"""
from dcgan_keras.binaries import common  # noqa: F401  (sets TF logging first)

from absl import app, flags, logging

from dcgan_keras.data import datasets, preprocessing
from dcgan_keras.evaluation import classifier
from dcgan_keras.models import architecture

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Where classifier.keras and classifier.json go.")
flags.DEFINE_enum("dataset", "fashion_mnist", datasets.DATASET_NAMES, "A labelled dataset.")
flags.DEFINE_string("data_dir", "", "See the train binary.")
flags.DEFINE_integer("image_size", 32, "Input size: the generator's image size.")
flags.DEFINE_integer("channels", 1, "1 or 3: the generator's channels.")
flags.DEFINE_enum("preprocess", "crop_resize", preprocessing.PREPROCESS_MODES,
                  "As the generator was trained.")
flags.DEFINE_integer("epochs", 5, "Training epochs.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_integer("max_examples", 0, "Use only the first N images of each split (0: all).")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_bool("allow_download", True, "Let tensorflow-datasets/Keras download missing data.")
flags.mark_flag_as_required("workdir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    try:
        architecture.validate(FLAGS.image_size, FLAGS.channels)
        if FLAGS.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {FLAGS.epochs}")
        info = classifier.train_classifier(
            FLAGS.dataset, FLAGS.workdir, FLAGS.image_size, FLAGS.channels, FLAGS.epochs,
            FLAGS.batch_size, FLAGS.data_dir or None, FLAGS.preprocess, FLAGS.allow_download,
            FLAGS.seed, FLAGS.max_examples or None)
    except (ValueError, FileNotFoundError) as e:
        common.fail(str(e))
    print(f"test accuracy {info['test_accuracy']:.4f}; saved {FLAGS.workdir}/classifier.keras")


# --help lists the flags under these headings (the README's order).
HELP_GROUPS = {
    "data": ["dataset", "data_dir", "image_size", "channels", "preprocess", "max_examples",
             "allow_download"],
    "optimisation": ["epochs", "batch_size"],
    "run": ["workdir", "seed"],
}

if __name__ == "__main__":
    common.run(main, HELP_GROUPS)
