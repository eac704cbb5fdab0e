"""What the CPU can do, from /proc/cpuinfo."""


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
    """The CPU feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    return set((_cpuinfo("flags") or "").split())


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or None."""
    return _cpuinfo("model name")
