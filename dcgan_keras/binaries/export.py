r"""Exports a trained DCGAN as SavedModels, TFLite generators and metadata.json.

    python -m dcgan_keras.binaries.export --workdir=runs/lsun
    python -m dcgan_keras.binaries.export --workdir=runs/lsun --export_dir=/srv/dcgan \
        --checkpoint=best

Another service then needs only TensorFlow:

    g = tf.saved_model.load("runs/lsun/export/generator")
    images = g.signatures["serving_default"](z=tf.random.uniform([16, 100], -1, 1))["images"]
"""
from dcgan_keras.binaries import common  # noqa: F401  (sets TF logging first)

from absl import app, flags, logging

from dcgan_keras.exporters import export_lib, tflite

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir (config.json + checkpoints/).")
flags.DEFINE_string("export_dir", None, "Output directory (default: WORKDIR/export). A "
                    "previous export there is replaced.")
flags.DEFINE_string("checkpoint", "latest", "latest, best or a checkpoint path prefix "
                    "(WORKDIR/checkpoints/ckpt-N).")
flags.DEFINE_enum("generator_weights", "generator", ["generator", "ema_generator"],
                  "Which generator weights of the checkpoint to export.")
flags.DEFINE_list("tflite", ["float32", "float16", "int8"],
                  "TFLite generators to write (float32, float16, int8); empty for none.")
flags.mark_flag_as_required("workdir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's save/load INFO lines are noise here
    bad = sorted(set(FLAGS.tflite) - set(tflite.QUANTIZATIONS))
    if bad:
        common.fail(f"--tflite takes {', '.join(tflite.QUANTIZATIONS)}, got {bad}")
    export_dir = FLAGS.export_dir or export_lib.default_export_dir(FLAGS.workdir)
    try:
        metadata = export_lib.export_from_workdir(
            FLAGS.workdir, export_dir, FLAGS.checkpoint, FLAGS.generator_weights,
            quantizations=FLAGS.tflite)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        common.fail(str(e))
    files = ["generator/", "discriminator/", *metadata["tflite"].values(), export_lib.METADATA]
    print(f"exported step {metadata['training_step']} to {export_dir}: {', '.join(files)}")


# --help lists the flags under these headings (the README's order).
HELP_GROUPS = {
    "networks": ["workdir", "checkpoint", "generator_weights"],
    "export": ["export_dir", "tflite"],
}

if __name__ == "__main__":
    common.run(main, HELP_GROUPS)
