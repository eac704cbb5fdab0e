r"""What the networks learned: the paper's section 6 as commands.

    python -m dcgan_keras.binaries.analyze walk --workdir=W --out_dir=D [--steps=10]
    python -m dcgan_keras.binaries.analyze arithmetic --export_dir=E --out_dir=D \
        --sheet=sheet.npz --groups="0,1,2;3,4,5;6,7,8" [--scales=-1,0,1,2]
    python -m dcgan_keras.binaries.analyze guided_backprop --workdir=W --out_dir=D \
        [--layer=block3_lrelu] [--units=0,1,2,3,4,5]
    python -m dcgan_keras.binaries.analyze forget --workdir=W --out_dir=D \
        (--sheet=S --boxes=boxes.json | --concept=square) [--layer=block1_relu]
    python -m dcgan_keras.binaries.analyze neighbors --workdir=W --out_dir=D [--k=5]
    python -m dcgan_keras.binaries.analyze dissect --workdir=W --out_dir=D \
        [--segmenter=shapes|module:function|SAVED_MODEL_DIR] [--layers=block1_relu] \
        [--threshold=iqr|quantile] [--unit_set=iou|ace] [--num_units=20] [--concept=circle]
    python -m dcgan_keras.binaries.analyze paint --workdir=W [--dissection=DIR] \
        [--unit_set=iou|ace] [--port=8000] [--host=127.0.0.1] [--layer=block1_relu]
    python -m dcgan_keras.binaries.analyze invert --workdir=W --images=DIR_OR_NPZ \
        --out_dir=D [--starts=4] [--inversion_steps=300] [--feature_weight=1]

Every verb writes PNG grids and a JSON file of its numbers into --out_dir and prints a
short summary (paint serves a page instead, until Ctrl-C). Layers are named (G:
project_relu, block{i}_relu, ...; D: block{i}_lrelu, ...); the defaults are the paper's.
A verb refuses a flag it does not take (dcgan_keras/analysis/options.py lists them). See
dcgan_keras/analysis/ for the library.
"""
from dcgan_keras.binaries import common  # noqa: F401  (sets TF logging first)

from absl import flags, logging

from dcgan_keras.analysis import analyze_lib
from dcgan_keras.analysis import options as options_lib

VERBS = tuple(options_lib.VERBS)
FLAGS = flags.FLAGS


def _define(kind, name, help_text, **kwargs):
    """flags.DEFINE_<kind>(name, ...) with the default of the verbs' options dataclasses."""
    default = options_lib.defaults()[name]
    if kind == "enum":  # DEFINE_enum(name, default, enum_values, help)
        return flags.DEFINE_enum(name, default, kwargs.pop("enum_values"), help_text)
    getattr(flags, f"DEFINE_{kind}")(
        name, list(default) if isinstance(default, tuple) else default, help_text, **kwargs)


common.define_model_source_flags()
_define("string", "out_dir", "Where the PNG grids and the JSON file go (required but for "
        "paint).")
_define("integer", "seed", "Seed of random z, noise and the untrained baselines.")
_define("string", "layer", "Layer by name (default: the paper's: D's last conv block for "
        "guided_backprop, G's second-highest conv layer for forget; paint: the dissection's "
        "best layer).")
_define("string", "sheet", "A sample sheet (.npz/.npy of the sample binary, or invert's "
        "inverted.npz) whose samples are picked by index (arithmetic, forget; neighbors: "
        "its samples; walk: walks between samples 0-1, 2-3, ...).")
_define("string", "dataset", "Real images (guided_backprop, neighbors); default: the run's.")
_define("string", "data_dir", "Its data directory; default: the run's.")
# walk
_define("integer", "num_walks", "walk: number of random z pairs.")
_define("integer", "steps", "walk: points per walk, endpoints included.")
_define("list", "modes", "walk: interpolations.")
_define("bool", "compare_untrained", "walk: also measure an untrained G.")
# arithmetic
_define("string", "groups", "arithmetic: A;B;C as ';'-separated lists of sheet indices, "
        "e.g. 0,1,2;3,4,5;6,7,8 (the paper averages 3 exemplars).")
_define("list", "z_files", "arithmetic: three .npy files of z's (A, B, C) instead.")
_define("list", "scales", "arithmetic: scales of the attribute vector A - B added to C.")
_define("string", "classifier", "arithmetic: a train_classifier workdir; reports the class "
        "of every generated image.")
# guided_backprop
_define("list", "units", "guided_backprop: channels.")
_define("integer", "top_k", "guided_backprop, dissect, paint: images per unit.")
_define("integer", "num_images", "guided_backprop: real images searched.")
# forget
_define("string", "boxes", "forget: JSON {sample index: [[x0, y0, x1, y1], ...]} on the "
        "--sheet's samples.")
_define("string", "concept", "forget on shapes: the object (circle, square, triangle); boxes "
        "from the segmenter's masks if --boxes is not given, and its pixel share is "
        "measured. dissect: the concept intervened on (a name of the segmenter's; default: "
        "the best of the best layer).")
_define("integer", "num_annotated", "forget: samples drawn for the regression when no "
        "--sheet is given (the paper's 150).")
_define("integer", "num_new", "forget: new samples drawn with and without the drop.")
_define("integer", "max_maps", "forget: drop only the N maps of largest weight (0: every map "
        "with a positive weight, the paper's).")
# neighbors
_define("integer", "num_samples", "neighbors: samples drawn when no --sheet is given.")
_define("integer", "k", "neighbors: nearest training images per sample.")
_define("integer", "max_train", "neighbors: search only the first N (0: all).")
# dissect (and paint, which dissects when no --dissection is given)
_define("list", "layers", "dissect, paint: G layers (default: every conv layer, "
        "project_relu, block1_relu, ...).")
_define("string", "segmenter", "dissect, paint: 'shapes' (the shapes colour rule), "
        "module:function (a Python callable), or a SavedModel directory; see "
        "dcgan_keras/analysis/dissect/segmenters.py for the interface.")
_define("enum", "threshold", "dissect, paint: iqr (GAN Dissection's: per unit and concept, "
        "the level of largest information quality ratio) or quantile (Network Dissection's: "
        "each unit's top --quantile).", enum_values=["iqr", "quantile"])
_define("float", "quantile", "dissect, paint: with --threshold=quantile, each unit's top "
        "quantile (Network Dissection's 0.5%).")
_define("integer", "num_dissect", "dissect, paint: generated samples dissected.")
_define("integer", "num_units", "dissect: k, the units of each set ablated and inserted "
        "(IoU-ranked, ACE-optimised, random); paint: units per concept.")
_define("enum", "unit_set", "dissect: iou (IoU-ranked and random sets) or ace (also sets "
        "optimised for the average causal effect; needs a segmenter with probabilities, e.g. "
        "one of binaries.train_segmenter); paint: which set each concept edits.",
        enum_values=["iou", "ace"])
_define("integer", "ace_epochs", "dissect --unit_set=ace: passes of the alpha optimisation "
        "over the --num_dissect samples.")
_define("integer", "num_intervene", "dissect: samples with and without each intervention "
        "(0: no intervention).")
_define("integer", "insert_locations", "dissect: insertion cells tried per sample (cells where "
        "the concept is absent).")
_define("list", "ignore_concepts", "dissect, paint: concepts left out of the summary and of "
        "the default choice.")
# paint
_define("string", "dissection", "paint: the --out_dir of an `analyze dissect` run of this "
        "model (default: dissect now, into --out_dir or WORKDIR/dissection, or reuse the one "
        "there).")
_define("string", "host", "paint: the address served. The default answers this machine "
        "only; 0.0.0.0 lets anyone who can reach it use the model.")
_define("integer", "port", "paint: the port served (0: any free port).")
# invert
_define("string", "images", "invert: a folder of image files, or a .npz/.npy of images (a "
        "sample sheet, or an array [N, H, W, C]); the run's preprocessing applies.")
_define("integer", "max_images", "invert: the first N images only (0: all).")
_define("integer", "starts", "invert: random starts of z per image; the best is kept.")
_define("integer", "inversion_steps", "invert: Adam steps on z from each start.")
_define("float", "learning_rate", "invert: Adam's step size on z.")
_define("float", "feature_weight", "invert: weight of the loss on D's features beside the "
        "pixels (0: pixels alone).")


def given_flags(flag_values=None):
    """Names of this binary's flags that the command line set."""
    flag_values = flag_values or FLAGS
    return sorted(name for name in common.binary_flag_names(flag_values)
                  if flag_values[name].present)


def main(argv):
    if len(argv) != 2 or argv[1] not in VERBS:
        common.fail(f"give one verb: {', '.join(VERBS)}; got {argv[1:] or 'none'}")
    verb = argv[1]
    given = given_flags()
    refused = options_lib.refusal(verb, given) or options_lib.ignored(
        verb, given, {name: FLAGS[name].value for name in options_lib.all_options()})
    if refused:
        common.fail(refused)
    if FLAGS.out_dir is None and verb != "paint":
        common.fail(f"{verb} needs --out_dir (where the PNG grids and the JSON file go)")
    if bool(FLAGS.workdir) == bool(FLAGS.export_dir):
        common.fail("pass exactly one of --workdir (a training run) or --export_dir")
    logging.set_verbosity(logging.WARNING)
    options = {name: FLAGS[name].value for name in options_lib.taken(verb)}
    try:
        summary = analyze_lib.run(verb, **options)
    except (ValueError, IndexError, FileNotFoundError) as e:
        common.fail(str(e))
    print(summary)


# --help lists the flags under these headings (the README's order).
HELP_GROUPS = {
    "networks": ["workdir", "export_dir", "checkpoint", "generator_weights"],
    "data": ["dataset", "data_dir"],
    "run": ["out_dir", "seed", "layer", "sheet"],
    "walk": ["num_walks", "steps", "modes", "compare_untrained"],
    "arithmetic": ["groups", "z_files", "scales", "classifier"],
    "guided_backprop": ["units", "top_k", "num_images"],
    "forget": ["boxes", "concept", "num_annotated", "num_new", "max_maps"],
    "neighbors": ["num_samples", "k", "max_train"],
    "dissect": ["layers", "segmenter", "threshold", "quantile", "num_dissect", "num_units",
                "unit_set", "ace_epochs", "num_intervene", "insert_locations",
                "ignore_concepts"],
    "paint": ["dissection", "host", "port"],
    "invert": ["images", "max_images", "starts", "inversion_steps", "learning_rate",
               "feature_weight"],
}

if __name__ == "__main__":
    common.run(main, HELP_GROUPS)
