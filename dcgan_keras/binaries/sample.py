r"""Draws generator samples, reproducibly from a seed, from a workdir or an export.

    python -m dcgan_keras.binaries.sample --workdir=runs/lsun --num=64 --out=grid.png
    python -m dcgan_keras.binaries.sample --export_dir=runs/lsun/export --seed=3 \
        --num=1000 --out=samples.npy

A .npy holds the images and the z that made each (np.load(path)["images"], ["z"]), so a
later analysis can pick samples by index; the same --seed always gives the same samples.
"""
from dcgan_keras.binaries import common  # noqa: F401  (sets TF logging first)

from absl import app, flags, logging

from dcgan_keras.analysis import outputs
from dcgan_keras.exporters import sampling

FLAGS = flags.FLAGS
common.define_model_source_flags()
flags.DEFINE_integer("num", 64, "Number of samples.")
flags.DEFINE_integer("seed", 0, "Seed of the latent vectors.")
flags.DEFINE_string("out", None, "Output file: .png (a grid), .npy or .npz (images + z).")
flags.DEFINE_string("z_file", None, "Draw G(z) of these z instead of --num and --seed: a .npy "
                    "of z [N, z_dim] or a .npz/.npy sample sheet, e.g. the inverted.npz of "
                    "analyze invert.")
flags.mark_flag_as_required("out")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if bool(FLAGS.workdir) == bool(FLAGS.export_dir):
        common.fail("pass exactly one of --workdir (a training run) or --export_dir")
    if FLAGS.num < 1:
        common.fail(f"--num must be >= 1, got {FLAGS.num}")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's save/load INFO lines are noise here
    if not FLAGS.out.lower().endswith(sampling.OUTPUT_FORMATS):
        common.fail(f"--out must end in one of {', '.join(sampling.OUTPUT_FORMATS)}, "
                    f"got {FLAGS.out!r}")
    if FLAGS.z_file and (FLAGS["num"].present or FLAGS["seed"].present):
        common.fail("--z_file gives the z to draw: leave out --num and --seed")
    try:
        given = outputs.load_z_file(FLAGS.z_file) if FLAGS.z_file else None
        if FLAGS.workdir:
            images, z = sampling.sample_from_workdir(FLAGS.workdir, FLAGS.num, FLAGS.seed,
                                                     FLAGS.checkpoint, FLAGS.generator_weights,
                                                     z=given)
        else:
            images, z = sampling.sample_from_export(FLAGS.export_dir, FLAGS.num, FLAGS.seed,
                                                    z=given)
        path = sampling.save_samples(FLAGS.out, images, z)
    except (ValueError, FileNotFoundError) as e:
        common.fail(str(e))
    origin = f"z of {FLAGS.z_file}" if FLAGS.z_file else f"seed {FLAGS.seed}"
    print(f"wrote {len(images)} samples ({origin}) to {path}")


# --help lists the flags under these headings (the README's order).
HELP_GROUPS = {
    "networks": ["workdir", "export_dir", "checkpoint", "generator_weights"],
    "sampling": ["num", "seed", "z_file", "out"],
}

if __name__ == "__main__":
    common.run(main, HELP_GROUPS)
