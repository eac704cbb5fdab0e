r"""Evaluates a trained DCGAN with an evaluator picked by name (evaluation/registry.py).

    python -m dcgan_keras.binaries.export --workdir=runs/fmnist
    python -m dcgan_keras.binaries.evaluate --workdir=runs/fmnist --eval=svm_probe
    python -m dcgan_keras.binaries.evaluate --workdir=runs/fmnist --eval=fid,kid,is,pr \
        --feature_net=runs/fmnist_classifier --num_samples=10000
    python -m dcgan_keras.binaries.evaluate --eval=fid,kid --feature_net=inception \
        --images=samples.npy --reference_images=real_folder/
    python -m dcgan_keras.binaries.evaluate --export_dir=/srv/dcgan --eval=svm_probe \
        --dataset=cifar10 --labels_per_class=100 --draws=10 --output_json=probe.json

The result's summary (for svm_probe: a table, mean +- 1.96 sigma over draws) goes to
stdout and the whole result to --output_json (default WORKDIR/eval/<eval>.json).
"""
from dcgan_keras.binaries import common  # noqa: F401  (sets TF logging first)

import json
import os

from absl import app, flags, logging

from dcgan_keras.evaluation import registry
from dcgan_keras.utils import files

FLAGS = flags.FLAGS
flags.DEFINE_string("eval", None, "Evaluator, or a comma-separated list of the metrics "
                    f"{','.join(registry.QUALITY_METRICS)}. " + "; ".join(
                        f"{name}: {e.help}" for name, e in registry.EVALUATORS.items()))
# --- What every evaluator gets (registry.EvalContext). ---
flags.DEFINE_string("workdir", "", "A training workdir.")
flags.DEFINE_string("export_dir", "", "An export directory (default: WORKDIR/export).")
flags.DEFINE_string("checkpoint", "latest", "latest, best or a checkpoint path prefix.")
flags.DEFINE_string("dataset", "", "Evaluation dataset (default: the training dataset).")
flags.DEFINE_string("data_dir", "", "Its files (default: the training run's data_dir when "
                    "the dataset is the same, else the dataset's usual places).")
flags.DEFINE_bool("allow_download", False, "Let tensorflow-datasets download missing data.")
flags.DEFINE_integer("seed", 0, "Seed of the evaluation's random choices.")
flags.DEFINE_string("output_json", "", "Result file (default: WORKDIR/eval/<eval>.json).")
# --- svm_probe (evaluation/probe_eval.py). ---
flags.DEFINE_integer("labels_per_class", 100, "svm_probe: labelled images per class.")
flags.DEFINE_integer("val_size", 10000, "svm_probe: held-out training images choosing C.")
flags.DEFINE_integer("draws", 10, "svm_probe: random draws of the labelled subset.")
flags.DEFINE_list("c_grid", [], "svm_probe: candidate SVM C values (default: "
                  "svm_probe.DEFAULT_C_GRID, 1e-5 ... 1e-1).")
flags.DEFINE_list("baselines", ["raw_pixels", "kmeans", "random_d", "supervised_cnn"],
                  "svm_probe: baselines run on the same draws.")
flags.DEFINE_integer("kmeans_centroids", 1600, "svm_probe: K of the K-means baseline.")
flags.DEFINE_integer("kmeans_patches", 400_000, "svm_probe: patches to fit K-means.")
flags.DEFINE_integer("max_train_examples", 0, "svm_probe: use the first N train images "
                     "(0: all).")
flags.DEFINE_integer("max_test_examples", 0, "svm_probe: use the first N test images "
                     "(0: all).")
flags.DEFINE_enum("svm_solver", "newton", ["newton", "liblinear"],
                  "svm_probe: 'newton' solves LinearSVC's problem exactly in the span of "
                  "the labelled rows (fast); 'liblinear' runs LinearSVC on all features.")
flags.DEFINE_enum("feature_scaling", "standard", ["standard", "none"],
                  "svm_probe: standardise every feature on the labelled subset, or not.")
flags.DEFINE_integer("trials", 64, "svm_probe: random-search trials per draw of the "
                     "supervised_cnn baseline (the paper's 64; each trains a CNN).")
flags.DEFINE_integer("early_stopping_images", 0, "svm_probe: supervised_cnn's early "
                     "stopping watches this many validation images (0: all of them; "
                     "trials are ranked on all of them either way).")
flags.DEFINE_integer("batch_size", 500, "Images per feature-network call.")
# --- fid, kid, is, pr (evaluation/quality_eval.py). ---
flags.DEFINE_string("feature_net", "inception", "fid/kid/is/pr: 'inception' (local weights) or "
                    "a domain classifier (its train_classifier workdir or .keras file).")
flags.DEFINE_integer("num_samples", 10000, "fid/kid/is/pr: generated images (and at most as "
                     "many reference images).")
flags.DEFINE_enum("reference_split", "test", ["train", "test"], "fid/kid/is/pr: real images.")
flags.DEFINE_string("images", "", "fid/kid/is/pr: score these images (a folder, .npy or .npz) "
                    "instead of the model's samples.")
flags.DEFINE_string("reference_images", "", "fid/kid/is/pr: real images (folder, .npy, .npz) "
                    "instead of --dataset's --reference_split.")
flags.DEFINE_string("inception_weights", "", "fid/kid/is/pr: InceptionV3 weights .h5 file.")
flags.DEFINE_enum("generator", "generator", ["generator", "ema"],
                  "fid/kid/is/pr: the workdir's generator or its EMA copy.")
flags.mark_flag_as_required("eval")

# Flag value -> option value; None leaves the option at the evaluator's default.
_CONVERTERS = {"c_grid": lambda values: [float(v) for v in values] or None,
               "baselines": lambda values: [v for v in values if v]}


def output_path(name):
    if FLAGS.output_json:
        return FLAGS.output_json
    if FLAGS.workdir:
        return os.path.join(FLAGS.workdir, "eval", f"{name}.json")
    return ""


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not (FLAGS.workdir or FLAGS.export_dir or FLAGS.images):
        common.fail("pass --workdir (a training run), --export_dir (an export) or "
                    "--images (image files to score)")
    logging.set_verbosity(logging.INFO)
    try:
        name, implied = registry.resolve(FLAGS.eval)
        evaluator = registry.get(name)
        options = {option: _CONVERTERS.get(option, lambda v: v)(FLAGS[option].value)
                   for option in evaluator.options if option not in implied}
        options = {option: value for option, value in options.items() if value is not None}
        options.update(implied)
    except ValueError as e:
        common.fail(f"bad option value: {e}")
    context = registry.EvalContext(
        workdir=FLAGS.workdir, export_dir=FLAGS.export_dir, checkpoint=FLAGS.checkpoint,
        dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, allow_download=FLAGS.allow_download,
        seed=FLAGS.seed)
    from dcgan_keras.data.errors import MissingDataError  # noqa: PLC0415 (TF is slow)
    try:
        result = registry.run(name, context, **options)
    except (ValueError, FileNotFoundError, MissingDataError) as e:
        common.fail(str(e))
    print(result.get("summary", json.dumps(result, indent=2)))
    path = output_path(name)
    if path:
        files.write_json(path, dict(result, eval=FLAGS.eval))
        print(f"wrote {path}")


# --help lists the flags under these headings (the README's order).
HELP_GROUPS = {
    "networks": ["workdir", "export_dir", "checkpoint", "generator"],
    "data": ["dataset", "data_dir", "allow_download", "reference_split", "images",
             "reference_images"],
    "evaluation": ["eval", "num_samples", "feature_net", "inception_weights", "batch_size",
                   "seed", "output_json"],
    "probe (--eval=svm_probe)": ["labels_per_class", "val_size", "draws", "c_grid",
                                 "baselines", "kmeans_centroids", "kmeans_patches",
                                 "max_train_examples", "max_test_examples", "svm_solver",
                                 "feature_scaling", "trials", "early_stopping_images"],
}

if __name__ == "__main__":
    common.run(main, HELP_GROUPS)
