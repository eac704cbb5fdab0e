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
        [--num_units=20] [--region=x0,y0,x1,y1] [--concept=circle]
    python -m dcgan_keras.binaries.analyze paint --workdir=W [--dissection=DIR] \
        [--port=8000] [--host=127.0.0.1] [--layer=block1_relu]

Every verb writes PNG grids and a JSON file of its numbers into --out_dir and prints a
short summary (paint serves a page instead, until Ctrl-C). Layers are named (G: project_relu, block{i}_relu, ...; D: block{i}_lrelu,
...); the defaults are the paper's. See dcgan_keras/analysis/ for the library.
"""
from dcgan_keras.binaries import common  # noqa: F401  (sets TF logging first)

from absl import flags, logging

VERBS = ("walk", "arithmetic", "guided_backprop", "forget", "neighbors", "dissect", "paint")
FLAGS = flags.FLAGS
common.define_model_source_flags()
flags.DEFINE_string("out_dir", None, "Where the PNG grids and the JSON file go (required but "
                    "for paint).")
flags.DEFINE_integer("seed", 0, "Seed of random z, noise and the untrained baselines.")
flags.DEFINE_string("layer", None, "Layer by name (default: the paper's: D's last conv block "
                    "for guided_backprop, G's second-highest conv layer for forget; paint: the "
                    "dissection's best layer).")
flags.DEFINE_string("sheet", None, "A sample sheet (.npz/.npy of the sample binary) whose "
                    "samples are picked by index (arithmetic, forget; neighbors: its samples).")
flags.DEFINE_string("dataset", None, "Real images (guided_backprop, neighbors); default: "
                    "the run's.")
flags.DEFINE_string("data_dir", None, "Its data directory; default: the run's.")
# walk
flags.DEFINE_integer("num_walks", 8, "walk: number of random z pairs.")
flags.DEFINE_integer("steps", 10, "walk: points per walk, endpoints included.")
flags.DEFINE_list("modes", ["linear", "spherical"], "walk: interpolations.")
flags.DEFINE_bool("compare_untrained", True, "walk: also measure an untrained G.")
# arithmetic
flags.DEFINE_string("groups", None, "arithmetic: A;B;C as ';'-separated lists of sheet "
                    "indices, e.g. 0,1,2;3,4,5;6,7,8 (the paper averages 3 exemplars).")
flags.DEFINE_list("z_files", None, "arithmetic: three .npy files of z's (A, B, C) instead.")
flags.DEFINE_list("scales", ["-1", "-0.5", "0", "0.5", "1", "1.5", "2"],
                  "arithmetic: scales of the attribute vector A - B added to C.")
flags.DEFINE_string("classifier", None, "arithmetic: a train_classifier workdir; reports the "
                    "class of every generated image.")
# guided_backprop
flags.DEFINE_list("units", ["0", "1", "2", "3", "4", "5"], "guided_backprop: channels.")
flags.DEFINE_integer("top_k", 6, "guided_backprop, dissect: images per unit.")
flags.DEFINE_integer("num_images", 2000, "guided_backprop: real images searched.")
# forget
flags.DEFINE_string("boxes", None, "forget: JSON {sample index: [[x0, y0, x1, y1], ...]} "
                    "on the --sheet's samples.")
flags.DEFINE_string("concept", None, "forget on shapes: the object (circle, square, triangle)"
                    "; boxes from the segmenter's masks if --boxes is not given, and its "
                    "pixel share is measured. dissect: the concept intervened on (a name of "
                    "the segmenter's; default: the best of the best layer).")
flags.DEFINE_integer("num_annotated", 150, "forget: samples drawn for the regression when "
                     "no --sheet is given (the paper's 150).")
flags.DEFINE_integer("num_new", 64, "forget: new samples drawn with and without the drop.")
flags.DEFINE_integer("max_maps", 0, "forget: drop only the N maps of largest weight (0: every "
                     "map with a positive weight, the paper's).")
# neighbors
flags.DEFINE_integer("num_samples", 16, "neighbors: samples drawn when no --sheet is given.")
flags.DEFINE_integer("k", 5, "neighbors: nearest training images per sample.")
flags.DEFINE_integer("max_train", 0, "neighbors: search only the first N (0: all).")
# dissect
flags.DEFINE_list("layers", None, "dissect: G layers (default: every conv layer, "
                  "project_relu, block1_relu, ...).")
flags.DEFINE_string("segmenter", "shapes", "dissect: 'shapes' (the shapes colour rule), "
                    "module:function (a Python callable), or a SavedModel directory; see "
                    "dcgan_keras/analysis/segmenters.py for the interface.")
flags.DEFINE_float("quantile", 0.005, "dissect: each unit's top quantile (the paper's 0.5%).")
flags.DEFINE_integer("num_dissect", 1000, "dissect: generated samples dissected.")
flags.DEFINE_integer("num_units", 20, "dissect: k, the top units of the concept ablated and "
                     "inserted (and k random units as the baseline).")
flags.DEFINE_integer("num_intervene", 500, "dissect: samples with and without each "
                     "intervention (0: no intervention).")
flags.DEFINE_list("region", None, "dissect: insertion region x0,y0,x1,y1 in image pixels "
                  "(default: the central half).")
flags.DEFINE_list("ignore_concepts", ["background"], "dissect: concepts left out of the "
                  "summary and of the default choice.")
# paint
flags.DEFINE_string("dissection", None, "paint: the --out_dir of an `analyze dissect` run of "
                    "this model (default: dissect now, into --out_dir or WORKDIR/dissection, "
                    "or reuse the one there).")
flags.DEFINE_string("host", "127.0.0.1", "paint: the address served. The default answers "
                    "this machine only; 0.0.0.0 lets anyone who can reach it use the model.")
flags.DEFINE_integer("port", 8000, "paint: the port served (0: any free port).")


def main(argv):
    if len(argv) != 2 or argv[1] not in VERBS:
        common.fail(f"give one verb: {', '.join(VERBS)}; got {argv[1:] or 'none'}")
    if FLAGS.out_dir is None and argv[1] != "paint":
        common.fail(f"{argv[1]} needs --out_dir (where the PNG grids and the JSON file go)")
    if bool(FLAGS.workdir) == bool(FLAGS.export_dir):
        common.fail("pass exactly one of --workdir (a training run) or --export_dir")
    logging.set_verbosity(logging.WARNING)
    from dcgan_keras.analysis import analyze_lib  # after flags: TensorFlow is slow to load
    options = {name: FLAGS[name].value for name in analyze_lib.OPTIONS}
    try:
        summary = analyze_lib.run(argv[1], **options)
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
    "dissect": ["layers", "segmenter", "quantile", "num_dissect", "num_units", "num_intervene",
                "region", "ignore_concepts"],
    "paint": ["dissection", "host", "port"],
}

if __name__ == "__main__":
    common.run(main, HELP_GROUPS)
