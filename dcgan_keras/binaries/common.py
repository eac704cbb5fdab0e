"""What every binary shares: quiet TensorFlow start-up and clear exits on bad input."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported


def fail(message):
    """Prints `error: message` to stderr and exits with status 2 (bad usage/input)."""
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)


def define_model_source_flags():
    """--workdir / --export_dir / --checkpoint / --generator_weights: where a binary that
    reads trained networks (sample, analyze) finds them."""
    from absl import flags  # noqa: PLC0415
    flags.DEFINE_string("workdir", None, "A training workdir (config.json + checkpoints/).")
    flags.DEFINE_string("export_dir", None, "An export directory (instead of --workdir).")
    flags.DEFINE_string("checkpoint", "latest", "With --workdir: latest, best or a path prefix.")
    flags.DEFINE_enum("generator_weights", "generator", ["generator", "ema_generator"],
                      "With --workdir: which generator weights to use.")
