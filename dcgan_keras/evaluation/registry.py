"""Evaluators picked by name (big_vision style): `evaluate --eval=NAME` runs EVALUATORS[NAME].

One small interface. An evaluator is a function

    def evaluate(context: EvalContext, **options) -> dict

that returns a JSON-serialisable dict; its "summary" entry (text, e.g. a table) is what
the evaluate binary prints, and the whole dict is what it writes to --output_json.
`context` carries what every evaluator may need (workdir, export dir, dataset, seed);
`options` are the evaluator's own keyword arguments, each one a flag of the evaluate
binary of the same name (listed in `Evaluator.options`).

To add one (say FID): write `dcgan_keras/evaluation/fid_eval.py` with
`evaluate(context, num_samples=50000, ...)`, add an entry below, and define a flag for
each of its options in `dcgan_keras/binaries/evaluate.py`. Entries name their function
as "module:function" and are imported only when run, so `evaluate --help` stays fast and
one evaluator's dependencies never burden another.
"""
import dataclasses
import importlib
import os
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class EvalContext:
    """What every evaluator gets.

    Attributes:
        workdir: a training workdir ("" when evaluating an export alone).
        export_dir: an export directory ("" -> workdir/export).
        checkpoint: latest, best or a path prefix (for evaluators that read checkpoints).
        dataset: dataset name ("" -> the one the model was trained on).
        data_dir: where that dataset's files are ("" -> the training run's, if the same
            dataset, else the dataset's default places).
        allow_download: whether missing data may be downloaded.
        seed: seed of every random choice of the evaluation.
    """
    workdir: str = ""
    export_dir: str = ""
    checkpoint: str = "latest"
    dataset: str = ""
    data_dir: str = ""
    allow_download: bool = False
    seed: int = 0

    def resolved_export_dir(self):
        if self.export_dir:
            return self.export_dir
        if not self.workdir:
            raise ValueError("pass --workdir (a training run) or --export_dir (an export)")
        return os.path.join(self.workdir, "export")


@dataclasses.dataclass(frozen=True)
class Evaluator:
    """A registry entry.

    Attributes:
        target: "module:function" of the evaluator function.
        options: names of its keyword options (= flags of the evaluate binary).
        help: one line for --help.
    """
    target: str
    options: Tuple[str, ...] = ()
    help: str = ""

    def load(self):
        module, function = self.target.split(":")
        return getattr(importlib.import_module(module), function)


EVALUATORS = {
    "svm_probe": Evaluator(
        "dcgan_keras.evaluation.probe_eval:evaluate",
        options=("labels_per_class", "val_size", "draws", "c_grid", "baselines",
                 "kmeans_centroids", "kmeans_patches", "max_train_examples",
                 "max_test_examples", "svm_solver", "feature_scaling", "batch_size",
                 "trials", "early_stopping_images"),
        help="the paper's linear L2-SVM probe of D's features (section 5.1) against raw "
             "pixels, K-means, a random D and a supervised CNN of D's architecture, on "
             "the same draws"),
    "sample_quality": Evaluator(
        "dcgan_keras.evaluation.quality_eval:evaluate",
        options=("metrics", "feature_net", "num_samples", "reference_split", "images",
                 "reference_images", "inception_weights", "generator", "batch_size"),
        help="FID, KID, Inception Score and precision/recall (--eval=fid,kid,is,pr) of "
             "generated images or --images against a dataset split or --reference_images"),
}


# --eval=fid,kid,is,pr (any subset) runs the sample_quality evaluator once with those metrics.
QUALITY_METRICS = ("fid", "kid", "is", "pr")


def names():
    return tuple(EVALUATORS) + QUALITY_METRICS


def resolve(spec):
    """`--eval` value -> (evaluator name, options it implies).

    "svm_probe" -> ("svm_probe", {}); "fid,kid" -> ("sample_quality", {"metrics": "fid,kid"}).
    """
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if parts and all(p in QUALITY_METRICS for p in parts):
        return "sample_quality", {"metrics": ",".join(parts)}
    if len(parts) == 1:
        get(parts[0])  # raises for an unknown name
        return parts[0], {}
    raise ValueError(f"--eval={spec!r}: give one evaluator ({', '.join(EVALUATORS)}) or a "
                     f"comma-separated list of metrics from {', '.join(QUALITY_METRICS)}")


def get(name):
    """The Evaluator called `name`; ValueError naming the known ones otherwise."""
    if name not in EVALUATORS:
        raise ValueError(f"unknown evaluator {name!r}; known: {', '.join(EVALUATORS)}")
    return EVALUATORS[name]


def run(name, context, **options):
    """Runs evaluator `name` with `context` and its options; returns its result dict."""
    evaluator = get(name)
    unknown = sorted(set(options) - set(evaluator.options))
    if unknown:
        raise ValueError(f"evaluator {name!r} takes options {list(evaluator.options)}, "
                         f"not {unknown}")
    return evaluator.load()(context, **options)
