"""The CUDA probe's build half runs on any machine: IREE's CUDA backend compiles mxc's MXINT8 program."""

from mxc.tools.cuda_probe import PROBES, build


def test_cuda_probe_builds_without_a_gpu(tmp_path):
    build(tmp_path)
    assert (tmp_path / "matmul_sm80.vmfb").stat().st_size > 0
    for fmt in PROBES:
        assert (tmp_path / f"mlp_{fmt}_sm80.vmfb").stat().st_size > 0
        assert (tmp_path / f"mlp_{fmt}" / "model.irpa").is_file()
        assert (tmp_path / f"mlp_{fmt}_cpu_y.npy").is_file()
