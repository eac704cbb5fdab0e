"""The pure helpers of benchmarks/throughput.py (the benchmark itself is not a test)."""
import importlib.util
import os

import pytest

from testutil import REPO

_spec = importlib.util.spec_from_file_location(
    "throughput", os.path.join(REPO, "benchmarks", "throughput.py"))
throughput = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(throughput)


def test_parse_rate_takes_the_last_peer_line():
    text = "warming up\nkeras_peer res=64 batch=128 jit=False img_per_s=19.5\n"
    assert throughput.parse_rate(text) == 19.5
    assert throughput.parse_rate("a img_per_s=1.0\nb img_per_s=2.5") == 2.5
    assert throughput.parse_rate("Traceback ...") is None


def test_summarize_is_the_median_of_windows():
    assert throughput.summarize([3.0, 1.0, 100.0]) == {
        "median": 3.0, "min": 1.0, "max": 100.0, "windows": 3}
    assert throughput.summarize([1.0, 2.0])["median"] == 1.5


def test_ratios_are_to_the_best_peer_of_the_same_size_and_batch():
    rows = [dict(kind="ours", size=64, batch=128, rate=120.0),
            dict(kind="peer", size=64, batch=128, rate=40.0),
            dict(kind="peer", size=64, batch=128, rate=60.0),
            dict(kind="peer", size=32, batch=128, rate=200.0),
            dict(kind="ours", size=64, batch=256, rate=50.0),  # no peer at this batch
            dict(kind="pipeline", size=64, batch=128, rate=900.0),
            dict(kind="ours", size=64, batch=128, rate=None)]  # a failed run
    ratios = [r["vs_best_peer"] for r in throughput.add_ratios(rows)]
    assert ratios == [pytest.approx(2.0), pytest.approx(2 / 3), pytest.approx(1.0),
                      pytest.approx(1.0), None, None, None]


def test_markdown_table_formats_and_marks_missing_values():
    table = throughput.markdown_table(
        [{"name": "ours", "rate": 12.345}, {"name": "peer"}],
        [("what", "name", "{}"), ("img/s", "rate", "{:.1f}")])
    assert table.splitlines() == ["| what | img/s |", "|---|---|", "| ours | 12.3 |",
                                  "| peer | - |"]


def test_thread_suffix():
    assert throughput.split_threads("torch_bf16@1t") == ("torch_bf16", 1)
    assert throughput.split_threads("bf16+xla") == ("bf16+xla", None)
    assert throughput.thread_env(None) == {}
    assert throughput.thread_env(1)["TF_NUM_INTRAOP_THREADS"] == "1"


def test_combine_rounds_keeps_each_configs_best_round():
    rows = [dict(kind="ours", name="ours bf16", size=64, batch=128, rate=80.0, round=0,
                 of_peak=0.6),
            dict(kind="ours", name="ours bf16", size=64, batch=128, rate=120.0, round=1,
                 of_peak=0.9),
            dict(kind="ours", name="ours bf16", size=64, batch=128, rate=100.0, round=2,
                 of_peak=0.8),
            dict(kind="peer", name="peer torch", size=64, batch=128, rate=None, round=0)]
    combined = {r["name"]: r for r in throughput.combine_rounds(rows)}
    assert combined["ours bf16"]["rate"] == 120.0 and combined["ours bf16"]["round"] == 1
    assert combined["ours bf16"]["round_median"] == 100.0
    assert combined["ours bf16"]["rounds"] == [80.0, 120.0, 100.0]
    assert combined["ours bf16"]["of_peak"] == 0.9  # the best round's
    assert combined["ours bf16"]["of_peak_median"] == 0.8  # the typical round's
    assert combined["peer torch"]["rate"] is None  # a failed peer stays visible
    assert combined["peer torch"]["of_peak_median"] is None


def test_variant_precision():
    assert throughput.variant_precision("bf16+xla") == "bfloat16"
    assert throughput.variant_precision("f16") == "float16"
    assert throughput.variant_precision("f32+xla") == "none"


def test_each_row_is_set_against_the_peak_of_its_own_dtype():
    assert throughput.peak_dtype("ours bf16") == "bfloat16"
    assert throughput.peak_dtype("ours bf16@1t") == "bfloat16"
    assert throughput.peak_dtype("ours bf16+xla") == "bfloat16"
    assert throughput.peak_dtype("peer torch_bf16@1t") == "bfloat16"
    assert throughput.peak_dtype("peer keras_jit_bf16") == "bfloat16"
    assert throughput.peak_dtype("ours f32+xla") == "float32"
    assert throughput.peak_dtype("peer torch") == "float32"


def test_the_fraction_of_the_peak_is_flops_per_second_over_the_peak():
    row = throughput.add_peak_fraction(dict(rate=300.0), 2.27e9, 900e9)
    assert row["of_peak"] == pytest.approx(300 * 2.27 / 900)
    assert row["peak_gflops"] == pytest.approx(900.0)
    assert throughput.add_peak_fraction(dict(rate=None), 2.27e9, 900e9)["of_peak"] is None
    assert throughput.add_peak_fraction(dict(rate=3.0), 2.27e9, None)["of_peak"] is None


def test_the_machine_line_says_when_amx_is_hidden(monkeypatch):
    from dcgan_keras.utils import cpu
    monkeypatch.setattr(cpu, "_cpuinfo", lambda field: "avx512f avx512_bf16 amx_bf16 amx_tile")
    monkeypatch.delenv("DCGAN_KERAS_AMX", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert "(amx_bf16/avx512_bf16/avx512f); " in throughput.machine_description()
    monkeypatch.setenv("DCGAN_KERAS_AMX", "0")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert ("(avx512_bf16/avx512f; DCGAN_KERAS_AMX=0, ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16); "
            in throughput.machine_description())
