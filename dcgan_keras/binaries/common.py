"""What every binary shares: quiet TensorFlow start-up and clear exits on bad input."""
import contextlib
import importlib
import os
import sys
import tempfile

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported


def fail(message):
    """Prints `error: message` to stderr and exits with status 2 (bad usage/input)."""
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)


def quiet_tensorflow(verbosity=0):
    """Imports TensorFlow and initialises its devices with its C++ start-up lines held back.

    TensorFlow's native code logs before absl logging is initialised, so
    TF_CPP_MIN_LOG_LEVEL does not hide the oneDNN banner or the "failed call to cuInit"
    error that every CPU-only host prints. Those lines go to a temporary file instead of
    stderr; they are shown with --verbosity >= 1, or when the import itself fails.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            # Here, with file descriptor 2 redirected: the point of this function.
            import tensorflow as tf  # noqa: PLC0415
            tf.config.list_physical_devices()  # where CUDA is probed (cuInit)
            failed = None
        except BaseException as e:  # noqa: BLE001 (re-raised below, with the lines)
            failed = e
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if failed is not None or verbosity >= 1:
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
        if failed is not None:
            raise failed


def argv_verbosity(argv):
    """absl's --verbosity (-v) from the raw command line, before flags are parsed."""
    for i, arg in enumerate(argv):
        for name in ("--verbosity", "-v"):
            if arg == name and i + 1 < len(argv):
                arg = f"{name}={argv[i + 1]}"
            if arg.startswith(name + "="):
                try:
                    return int(arg.split("=", 1)[1])
                except ValueError:
                    return 0
    return 0


def define_model_source_flags():
    """--workdir / --export_dir / --checkpoint / --generator_weights: where a binary that
    reads trained networks (sample, analyze) finds them."""
    flags.DEFINE_string("workdir", None, "A training workdir (config.json + checkpoints/).")
    flags.DEFINE_string("export_dir", None, "An export directory (instead of --workdir).")
    flags.DEFINE_string("checkpoint", "latest", "With --workdir: latest, best or a path prefix.")
    flags.DEFINE_enum("generator_weights", "generator", ["generator", "ema_generator"],
                      "With --workdir: which generator weights to use.")


# Every binary imports this module first: TensorFlow starts quietly before anything else
# imports it.
quiet_tensorflow(argv_verbosity(sys.argv[1:]))


HELP_ARGS = ("--help", "-help", "--helpshort", "-h", "-?")


def grouped_help(doc, groups, flag_values=None):
    """The --help text: the binary's docstring, then its flags under `groups`' headings.

    Args:
        doc: the binary's module docstring (its first lines say what it does).
        groups: an ordered mapping heading -> flag names, e.g. {"data": ["dataset", ...]}.
            Flags of the binary in no group are listed last, under "other".
        flag_values: absl FlagValues (default: absl's global FLAGS).
    """
    flag_values = flag_values or flags.FLAGS
    ours = sorted(binary_flag_names(flag_values))
    grouped = [name for names in groups.values() for name in names]
    sections = list(groups.items())
    rest = [name for name in ours if name not in grouped]
    if rest:
        sections.append(("other", rest))
    lines = [doc.strip("\n"), ""]
    for heading, names in sections:
        lines.append(f"{heading}:")
        for name in names:
            flag = flag_values[name]
            text = f"--{name}: {flag.help}"
            if flag.default is not None and flag.default != "":
                text += f" (default: {flag.default_as_str.strip(chr(39))})"
            lines.append(flags.text_wrap(text, length=88, indent="      ",
                                         firstline_indent="  "))
        lines.append("")
    lines.append("absl: --verbosity, --helpfull (every flag, also absl's and TensorFlow's)")
    return "\n".join(lines) + "\n"


def binary_flag_names(flag_values=None):
    """Names of the flags that the binary defined (not absl's or TensorFlow's own)."""
    flag_values = flag_values or flags.FLAGS
    names = set()
    for module, module_flags in flag_values.flags_by_module_dict().items():
        if module.startswith(("absl", "tensorflow", "keras")):
            continue
        names.update(flag.name for flag in module_flags)
    return names


def run(main, groups):
    """absl's app.run(main), with --help (and -h) answered by `grouped_help`."""
    if any(arg in HELP_ARGS for arg in sys.argv[1:]):
        sys.stdout.write(grouped_help(sys.modules["__main__"].__doc__ or "", groups))
        sys.exit(0)
    app.run(main)


@contextlib.contextmanager
def binary_flags(name, argv=None):
    """Defines binary `name`'s absl flags in this process and parses `argv` with them.

    Yields the binary's module, its flags parsed (flags.Error propagates for a value they
    refuse). Afterwards the flags are removed and the module unloaded again, because absl's
    flags are global and binaries define flags of the same names: one process can so check
    every binary's flags in turn (the docs' command probe, the in-process bad-flag tests).

    Args:
        name: a module of dcgan_keras.binaries, e.g. "train".
        argv: the command-line arguments after the program name (None: define the flags
            but parse nothing).
    """
    saved_argv = sys.argv
    sys.argv = [name]
    before = binary_flag_names()
    try:
        module = importlib.import_module(f"dcgan_keras.binaries.{name}")
        if argv is not None:
            flags.FLAGS.unparse_flags()
            flags.FLAGS([name, *argv])
        yield module
    finally:
        sys.argv = saved_argv
        flags.FLAGS.unparse_flags()
        for flag in binary_flag_names() - before:
            delattr(flags.FLAGS, flag)
        package = sys.modules["dcgan_keras.binaries"]
        for loaded in [m for m in sys.modules if m.startswith("dcgan_keras.binaries.")]:
            if loaded != "dcgan_keras.binaries.common":
                del sys.modules[loaded]
                # else `from dcgan_keras.binaries import x` finds the old module again
                # and its flags are not defined a second time
                vars(package).pop(loaded.rsplit(".", 1)[1], None)
