"""benchmarks/batch_norm_ops.py: both forms compute the same, and the table reads right."""
import importlib.util
import os

import pytest

from dcgan_keras.models import native_ops
from testutil import REPO

_spec = importlib.util.spec_from_file_location(
    "batch_norm_ops", os.path.join(REPO, "benchmarks", "batch_norm_ops.py"))
batch_norm_ops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(batch_norm_ops)


@pytest.mark.parametrize("slope", [0.2, 0.0])
def test_both_forms_compute_the_same(slope):
    if native_ops.library() is None:
        pytest.skip(f"the native op is off here: {native_ops.error()}")
    rows = batch_norm_ops.measure(8, 1, layers=(("layer", 4, 80, slope),))
    assert [r["form"] for r in rows] == list(batch_norm_ops.FORMS)
    for r in rows:
        assert r["forward_ms"] > 0 and r["both_ms"] > 0
        assert max(r["errors"].values()) < 0.02, r  # bfloat16 rounding
    assert rows[0]["errors"] == dict(y=0.0, dx=0.0, dgamma=0.0, dbeta=0.0)  # itself


def test_the_table_gives_rates_and_totals():
    rows = [dict(layer="D block2", shape=[2, 4, 4, 8], slope=0.2, form=form, forward_ms=ms,
                 both_ms=2 * ms, forward_bytes=3e6, both_bytes=8e6,
                 errors=dict(y=0.001, dx=0.002, dgamma=0.0, dbeta=0.0))
            for form, ms in (("tensorflow", 2.0), ("native", 1.0))]
    text = batch_norm_ops.markdown(rows, "header")
    assert "| D block2 | 2x4x4x8 | tensorflow | 2.00 (2) | 4.00 (2) |" in text
    assert "| D block2 | 2x4x4x8 | native | 1.00 (3) | 2.00 (4) |" in text
    assert "tensorflow 4.00 ms, native 2.00 ms." in text
