"""The train_classifier binary refuses bad input with exit 2 and one line (its training is
tested in-process: tests/evaluation/test_sample_quality.py)."""
from testutil import run_binary


def test_bad_input_is_one_clear_line(tmp_path):
    for flags, message in [(["--image_size=48"], "image_size must be a power of two"),
                           (["--epochs=0"], "epochs must be >= 1, got 0")]:
        result = run_binary("dcgan_keras.binaries.train_classifier",
                            f"--workdir={tmp_path}/clf", "--allow_download=false", *flags)
        assert result.returncode == 2, result.stderr[-2000:]
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
        assert "Traceback" not in result.stderr
