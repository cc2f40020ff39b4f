"""The numerics reference against FORMATS.md: casts, scale rules, special blocks, properties."""


import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mxc.numerics import FORMATS, UnknownFormatError, get_format, pack_nibbles, quantize, unpack_nibbles
from mxc.numerics.elements import decode, decode_table, encode, round_to_element
from mxc.numerics.formats import E2M1, E4M3

ML = {"e4m3": ml_dtypes.float8_e4m3fn, "e2m1": ml_dtypes.float4_e2m1fn}


@pytest.mark.parametrize("elem", [E4M3, E2M1], ids=lambda e: e.name)
def test_decode_table_matches_ml_dtypes_for_every_code(elem):
    codes = np.arange(1 << elem.bits, dtype=np.uint8)  # ml_dtypes keeps a 4-bit code in one byte
    ref = codes.view(ML[elem.name]).astype(np.float32)
    np.testing.assert_array_equal(decode_table(elem).numpy(), ref)


@pytest.mark.parametrize("elem", [E4M3, E2M1], ids=lambda e: e.name)
def test_round_matches_ml_dtypes_on_codes_and_midpoints(elem):
    vals = decode_table(elem).double()
    finite = torch.unique(vals[torch.isfinite(vals)])
    mids = (finite[1:] + finite[:-1]) / 2  # every tie between neighbours
    nudged = torch.cat([mids, torch.nextafter(mids.float(), torch.tensor(1e9)).double(),
                        torch.nextafter(mids.float(), torch.tensor(-1e9)).double()])
    x = torch.cat([finite, nudged]).float()
    x = x.clamp(-elem.max, elem.max)  # ml_dtypes does not saturate; FORMATS.md does (tested below)
    got = round_to_element(x, elem).numpy()
    ref = x.numpy().astype(ML[elem.name]).astype(np.float32)
    np.testing.assert_array_equal(got, ref)
    codes = encode(torch.from_numpy(got), elem)
    if elem.bits == 8:
        np.testing.assert_array_equal(codes.numpy(), x.numpy().astype(ML[elem.name]).view(np.uint8))
    assert torch.equal(decode(codes, elem), torch.from_numpy(got))


def test_ties_go_to_even_and_saturation_keeps_sign():
    assert round_to_element(torch.tensor([2.5, 3.5, 5.0, -5.0, 0.25, 0.75]), E2M1).tolist() == [2, 4, 4, -4, 0, 1]
    assert round_to_element(torch.tensor([7.0, -100.0, 1e30]), E2M1).tolist() == [6, -6, 6]
    assert round_to_element(torch.tensor([464.0, 1000.0, -500.0]), E4M3).tolist() == [448, 448, -448]
    neg0 = round_to_element(torch.tensor([-0.0, -0.1]), E2M1)
    assert encode(neg0, E2M1).tolist() == [0x8, 0x8]
    assert round_to_element(torch.tensor([2.0**-9, 2.0**-10, 3 * 2.0**-11]), E4M3).tolist() == [2.0**-9, 0, 2.0**-9]


def test_mx_floor_scale_rule_and_saturation():
    x = torch.zeros(32)
    x[0] = 480.0  # floor(log2 480) = 8 = emax(E4M3): scale 2^0, 480 saturates to 448
    q = quantize(x, "mxfp8")
    assert q.scale_codes().tolist() == [127]
    assert q.dequantize()[0].item() == 448.0
    x[0] = 7.0  # E2M1: floor(log2 7) = 2, emax 2 -> scale 2^0; 7 saturates to 6
    q = quantize(x, "mxfp4")
    assert q.scale_codes().tolist() == [127] and q.dequantize()[0].item() == 6.0


def test_special_blocks():
    x = torch.ones(3, 32)
    x[0] = 0
    x[1, 5] = float("nan")
    x[2, 7] = float("inf")
    q = quantize(x, "mxfp4")
    assert q.scale_codes()[:, 0].tolist() == [0x00, 0xFF, 0xFF]
    assert torch.all(q.element_codes()[0] == 0)
    assert torch.isnan(q.dequantize()[1:]).all()
    assert torch.equal(q.dequantize()[0], torch.zeros(32))
    n = quantize(torch.cat([torch.ones(16), torch.full((16,), float("nan"))]), "nvfp4")
    assert n.scale_codes().tolist()[1] == 0x7F and torch.isnan(n.dequantize()[16:]).all()
    assert torch.equal(n.dequantize()[:16], torch.ones(16))


def test_e8m0_zero_code_is_two_to_minus_127():
    x = torch.zeros(32)
    x[0] = 2.0**-130  # tiny block: e clamps to -127, code 0x00 = 2^-127 (not 0)
    q = quantize(x, "mxfp8")
    assert q.scale_codes().item() == 0
    assert q.scale_values().item() == 2.0**-127


def test_nvfp4_recipe_and_zero_scale_flush():
    x = torch.tensor([6.0] + [0.0] * 15 + [1e-6] + [0.0] * 15)
    q = quantize(x, "nvfp4")
    s_enc = 448 * 6 / 6.0
    assert q.tensor_scale.item() == pytest.approx(1 / s_enc)
    assert decode(q.scales, E4M3).tolist() == [448.0, 0.0]  # 1e-6/6*448 rounds to 0 in E4M3: flush
    assert q.dequantize()[16].item() == 0.0
    assert q.dequantize()[0].item() == 6.0


def test_padding_is_zero_and_removed():
    x = torch.randn(5, 70)
    q = quantize(x, "mxfp4")
    assert q.elements.shape == (5, 96) and torch.all(q.elements[:, 70:] == 0)
    assert q.element_codes().shape == (5, 70) and q.scale_codes().shape == (5, 3)
    xp = torch.nn.functional.pad(x, (0, 26))
    assert torch.equal(quantize(xp, "mxfp4").dequantize()[:, :70], q.dequantize())


def test_axis_argument():
    x = torch.randn(64, 8)
    assert torch.equal(quantize(x, "mxfp8", axis=0).dequantize(), quantize(x.t(), "mxfp8").dequantize().t())


def test_packing_low_nibble_first():
    codes = torch.tensor([[0x1, 0x2, 0xF, 0x0]], dtype=torch.uint8)
    assert pack_nibbles(codes).tolist() == [[0x21, 0x0F]]
    assert torch.equal(unpack_nibbles(pack_nibbles(codes)), codes)


def test_unknown_format_lists_valid_names():
    with pytest.raises(UnknownFormatError, match="valid formats are fp4_ue5m3, if4, mxfp4, mxfp6_e2m3"):
        get_format("mxfp5")


finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


def _block_grids(q) -> torch.Tensor:
    """The float64 values each block may take before its scale: [Ko, n_values]."""
    fmt = q.fmt
    table = decode_table(fmt.element).double()
    codes = torch.arange(table.numel())
    if fmt.element.kind == "int":  # encode clamps to [-qmax, qmax]: the most negative code is never produced
        table = table[(codes != 1 << (fmt.element.bits - 1))]
    table = table[torch.isfinite(table)]
    grids = table.expand(q.scales.shape[-1], -1).clone()
    if fmt.choice == "if4":
        ints = torch.arange(-7, 8, dtype=torch.float64) * float(torch.tensor(6 / 7))
        ints = torch.nn.functional.pad(ints, (0, table.numel() - ints.numel()), value=float(ints[0]))
        grids = torch.where(q.int_blocks().reshape(-1, 1), ints, grids)
    return grids


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=32, max_size=32), st.sampled_from(sorted(FORMATS)))
def test_properties(values, fmt):
    x = torch.tensor(values, dtype=torch.float32)
    q = quantize(x, fmt)
    d = q.dequantize()
    # idempotence: quantizing the dequantized tensor gives it back (same scales exist)
    assert torch.equal(quantize(d, fmt).dequantize(), d) or FORMATS[fmt].tensor_scale
    # sign symmetry
    assert torch.equal(quantize(-x, fmt).dequantize(), -d)
    # nearest: every value is the nearest grid point under its block's scale (or saturated);
    # the NV family scales x by the f32 reciprocal 1/(s_b * S_dec) (TransformerEngine's recipe), so a
    # value within float32 rounding (2^-21 |x|) of a tie may go either way there.
    bs = FORMATS[fmt].block_size
    scale = q.scale_values().repeat_interleave(bs)[: x.numel()].double()
    grids = _block_grids(q).repeat_interleave(bs, dim=0)[: x.numel()]
    slack = 2.0**-21 if FORMATS[fmt].tensor_scale else 0.0
    for xi, di, si, grid in zip(x.double(), d.double(), scale, grids):
        if si == 0:
            continue
        best = (grid * si - xi).abs().min()
        assert abs(di - xi) <= best + slack * abs(float(xi)) + 1e-300


@pytest.mark.parametrize("name", sorted(n for n in FORMATS if n != "none"))
def test_row_bytes_round_trip(name):
    """row_bytes (a KV cache's rows) holds a quantize exactly: from_row_bytes gives back its codes and values, each
    row with the tensor scale of its own quantize, in row_nbytes bytes per row."""
    from mxc.numerics import fake_quantize, from_row_bytes, row_bytes, row_nbytes

    x = torch.randn(2, 3, 5, 64, generator=torch.Generator().manual_seed(0)) * 3
    x[0, 1, 2, 5] = float("nan")
    q = quantize(x, name)
    b = row_bytes(q)
    assert b.dtype == torch.uint8 and b.shape == (2, 3, 5, row_nbytes(q.fmt, 64))
    back = from_row_bytes(b, name, 64)
    assert torch.equal(back.elements, q.elements) and torch.equal(back.scales, q.scales)
    torch.testing.assert_close(back.dequantize(), fake_quantize(x, name), rtol=0, atol=0, equal_nan=True)
    two = torch.cat([b, row_bytes(quantize(x * 1e3, name))], dim=2)  # rows of two quantizes, one tensor
    torch.testing.assert_close(from_row_bytes(two, name, 64).dequantize()[:, :, 5:], fake_quantize(x * 1e3, name),
                               rtol=0, atol=0, equal_nan=True)
    with pytest.raises(ValueError, match="rows of"):
        from_row_bytes(b[..., 1:], name, 64)
