"""mxc.tools.ncu_summary: a decode step's kernel time by kind from Nsight Compute's raw CSV."""

from __future__ import annotations

import pytest

from mxc.tools import ncu_summary

CSV = '''==PROF== Connected to process 1
"ID","Process ID","Kernel Name","gpu__time_duration.sum"
"","","","nsecond"
"0","1","prefill$async_dispatch_3_reduction_2048_f32","9,000"
"1","1","mxc_rdec_nvfp4_n64_s1","20000"
"2","1","decode$async_dispatch_0_elementwise_broadcast_2048_i64xf32","2000"
"3","1","mxc_dec_nvfp4_m1","4000"
"4","1","decode$async_dispatch_9_attention_8x4x64x64x256","6000"
"5","1","prefill$async_dispatch_116_reduction_251_f32","25000"
"6","1","decode$async_dispatch_0_elementwise_broadcast_2048_i64xf32","2000"
"7","1","mxc_dec_nvfp4_m1","6000"
'''


def test_kinds_and_per_step_totals_start_at_the_first_decode_dispatch():
    rows = ncu_summary.read_rows(CSV)
    assert rows[0] == ("prefill$async_dispatch_3_reduction_2048_f32", 9.0)  # ns -> µs, thousands separators
    s = ncu_summary.summarize(rows, steps=2)
    assert s == {"iree:reduction": (0.5, 12.5), "dec": (1.0, 5.0), "iree:attention": (0.5, 3.0),
                 "iree:elementwise": (1.0, 2.0)}
    assert list(s) == ["iree:reduction", "dec", "iree:attention", "iree:elementwise"]  # by time, largest first
    assert ncu_summary.summarize(rows, steps=1, prefill=True) == {"rdec": (1.0, 20.0), "iree:reduction": (1.0, 9.0)}


def test_a_profile_without_a_decode_call_or_a_table_is_refused():
    with pytest.raises(SystemExit, match="no kernel named decode"):
        ncu_summary.summarize(ncu_summary.read_rows(CSV.replace("decode$", "other$")), steps=1)
    with pytest.raises(SystemExit, match="no ncu CSV table"):
        ncu_summary.read_rows("==PROF== nothing profiled\n")
