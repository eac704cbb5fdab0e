"""A progress line for long runs: step, epoch, losses, images/s and ETA."""
import sys
import time


def _duration(seconds):
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Prints `step k/n (epoch e) d_loss .. g_loss .. | img/s | ETA`.

    On a terminal the line is redrawn in place; in a log file one line is printed per
    update, so long runs can be followed with `tail -f`.
    """

    def __init__(self, total_steps=None, steps_per_epoch=None, start_step=0, stream=None):
        self.total = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.stream = stream or sys.stdout
        self.start_step = start_step
        self.start_time = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, step, logs=None, images_per_sec=None):
        parts = [f"step {step}/{self.total}" if self.total else f"step {step}"]
        if self.steps_per_epoch:
            parts[0] += f" (epoch {step / self.steps_per_epoch:.2f})"
        names = {"d_loss": "d_loss", "g_loss": "g_loss", "d_x": "D(x)", "d_g_z": "D(G(z))"}
        for key, value in (logs or {}).items():
            parts.append(f"{names.get(key, key)} {value:.4f}")
        if images_per_sec:
            parts.append(f"| {images_per_sec:.1f} img/s")
        done = step - self.start_step
        if done > 0 and self.total:
            elapsed = time.perf_counter() - self.start_time
            parts.append(f"| ETA {_duration(elapsed / done * (self.total - step))}")
        line = " ".join(parts)
        if self.tty:
            self.stream.write("\r" + line.ljust(120))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()
