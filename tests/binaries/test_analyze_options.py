"""The analyze binary refuses a flag that its verb does not take: one line, exit status 2,
before any networks are loaded (the workdir here does not exist)."""
from testutil import run_binary


def test_a_flag_the_verb_does_not_take_is_one_line(tmp_path):
    proc = run_binary("dcgan_keras.binaries.analyze", "walk", f"--workdir={tmp_path}/none",
                      f"--out_dir={tmp_path}/out", "--layer=no_such_layer", "--seed=0",
                      timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: analyze walk does not take --layer (it takes --sheet, --num_walks, --steps, "
        "--modes, --compare_untrained; and, as every verb, --workdir, --export_dir, "
        "--checkpoint, --generator_weights, --out_dir, --seed)"]
    assert proc.stdout == ""
