"""What the CPU can do, from /proc/cpuinfo."""
import os

# Set to 0, the AMX flags are left out of `cpu_flags`: the native ops are built without AMX
# and every choice made on the flags is the one for a CPU without it (AVX512-BF16 only, as
# AMD's Zen 4). With ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 for TensorFlow's own kernels, an
# AMX Xeon then runs, and measures, the code paths of such a CPU.
AMX_SWITCH = "DCGAN_KERAS_AMX"


def _cpuinfo(field):
    """The value of the first `field` line of /proc/cpuinfo, or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags():
    """The CPU feature flags from /proc/cpuinfo (empty where it cannot be read), without the
    AMX ones where `amx_hidden()`."""
    flags = _all_flags()
    return {f for f in flags if not f.startswith("amx")} if _hides_amx(flags) else flags


def amx_hidden():
    """Whether $DCGAN_KERAS_AMX=0 hides AMX (`AMX_SWITCH`) on a CPU that has it."""
    return _hides_amx(_all_flags())


def _hides_amx(flags):
    return os.environ.get(AMX_SWITCH, "1") == "0" and any(f.startswith("amx") for f in flags)


def _all_flags():
    return set((_cpuinfo("flags") or "").split())


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or None."""
    return _cpuinfo("model name")
