"""benchmarks/kernel_gradients.py: every form of the kernel gradient computes the same."""
import importlib.util
import os

import pytest

from testutil import REPO

_spec = importlib.util.spec_from_file_location(
    "kernel_gradients", os.path.join(REPO, "benchmarks", "kernel_gradients.py"))
kernel_gradients = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernel_gradients)


@pytest.mark.parametrize("side,channels,filters", [(8, 3, 16), (16, 8, 4)])
def test_every_form_equals_onednns_kernel_gradient(side, channels, filters):
    rows = kernel_gradients.measure(8, 1, layers=(("layer", side, channels, filters),))
    assert [r["form"] for r in rows] == list(kernel_gradients.FORMS)
    for r in rows:
        assert r["error"] < 0.02, r  # bfloat16 rounding of sums of 8 x 16 x 16 products
        assert r["ms"] > 0 and r["gflops"] > 0


def test_the_table_has_a_cell_per_layer_and_form():
    rows = [dict(layer=layer, form=form, ms=2.0, gflops=100.0, error=0.001)
            for layer in ("a", "b") for form in ("onednn", "gather_matmul")]
    text = kernel_gradients.markdown(rows, 200e9, "header")
    assert "| form | a | b |" in text
    assert "| onednn | 2.0 ms, 0.50 | 2.0 ms, 0.50 |" in text
