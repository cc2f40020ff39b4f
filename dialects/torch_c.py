"""Builders for the torch_c casts (torch-mlir ships no Python op classes for torch_c)."""

from torch_mlir import ir


def from_builtin(value: ir.Value, vtensor_type: ir.Type) -> ir.Value:
    """torch_c.from_builtin_tensor: builtin tensor -> !torch.vtensor."""
    return ir.Operation.create("torch_c.from_builtin_tensor", results=[vtensor_type], operands=[value]).result


def to_builtin(value: ir.Value, tensor_type: ir.Type) -> ir.Value:
    """torch_c.to_builtin_tensor: !torch.vtensor -> builtin tensor."""
    return ir.Operation.create("torch_c.to_builtin_tensor", results=[tensor_type], operands=[value]).result


def builtin_type_of(vtensor_type: ir.Type) -> ir.RankedTensorType:
    """The builtin tensor type of a !torch.vtensor<[...],dtype> (a `?` size stays dynamic)."""
    text = str(vtensor_type)  # !torch.vtensor<[4,64],f32>, !torch.vtensor<[?,64],f32>
    dims, dtype = text[len("!torch.vtensor<[") : -1].split("],")
    dyn = ir.ShapedType.get_dynamic_size()
    shape = [dyn if d == "?" else int(d) for d in dims.split(",")] if dims else []
    if dtype[:2] in ("si", "ui"):  # torch's signed/unsigned integers are signless in builtin tensors
        dtype = "i" + dtype[2:]
    return ir.RankedTensorType.get(shape, ir.Type.parse(dtype))
