"""What every binary shares: quiet TensorFlow start-up and clear exits on bad input."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported


def fail(message):
    """Prints `error: message` to stderr and exits with status 2 (bad usage/input)."""
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)
