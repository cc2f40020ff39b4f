"""How much each layer's quantization would cost the model: the gradient-weighted output error.

For a layer computing Y and a candidate giving Y_q from the same inputs, the score is

    S = sum over calibration tokens and outputs of g^2 (Y_q - Y)^2,   g = dLoss/dY

(a diagonal Fisher / Taylor estimate of the loss increase, as NVIDIA ModelOpt's auto_quantize
scores). One forward and one backward pass per calibration batch, on the exported graph with a tap
after each layer: the tap records the layer's operands and the gradient at its output. The loss is
model.py's `get_loss(output, *inputs)`; without one, the gradient of a fixed random projection of
the outputs (then S estimates the squared output error, the Gauss-Newton diagonal); a loss that
cannot be differentiated falls back to g = 1 (plain output error). Every candidate's Y_q is computed
by `mxc.numerics.fake_quantize`, as the `--compare` reference does, from the layer's own inputs.
"""

from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass, field

import torch

from mxc.compiler.frontend import export
from mxc.errors import MxcWarning
from mxc.layers import module_path, unique_layer_names
from mxc.policy import Choice
from mxc.runtime.reference import _ARG_POSITIONS, _CONVS, _MATMULS, _FakeQuantConv2d, _flatten, _fq

from .budget import AutoError


@dataclass
class Tapped:
    """One layer's calibration record: the op, its operands (activations concatenated over batches),
    and dLoss/dY at its output."""

    target: object
    args: list  # the op's arguments, tensors detached
    act_index: int  # position of the activation operand in args
    w_index: int  # position of the right-hand operand
    w_axis: int  # its block axis (the reduction)
    act_node: str  # the graph node of the activations (layers that share it read one activation)
    dtype_bits: int  # bits of the right-hand operand's dtype (32, or 16 for bf16/f16)
    param: str | None = None  # the model parameter the right-hand side is (None: computed)
    module: str = ""  # the tap's module in the tapped graph (its operands': MODULE_operandI)
    grads: list[torch.Tensor] = field(default_factory=list)
    acts: list[torch.Tensor] = field(default_factory=list)
    rhs: list[torch.Tensor] = field(default_factory=list)  # per batch, when it is an activation too

    def operands(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(activations, right-hand operand, gradient), float32, batches concatenated."""
        x = torch.cat(self.acts).float()
        w = (torch.cat(self.rhs) if self.rhs else self.args[self.w_index]).float()
        return x, w, torch.cat(self.grads).float() if self.grads else torch.empty(0)


class _Tap(torch.nn.Module):
    """y -> y + 0 (a zero that requires grad, so the graph below records a gradient at y), keeping
    the layer's operands and, in the backward pass, dLoss/dy (while `recording`)."""

    def __init__(self, record: Tapped, rhs_is_var: bool):
        super().__init__()
        self.record, self.rhs_is_var = record, rhs_is_var
        self.zero = torch.zeros((), requires_grad=True)
        self.recording = True

    def forward(self, y, act, rhs):
        if not self.recording:
            return y
        self.record.acts.append(act.detach())
        if self.rhs_is_var:
            self.record.rhs.append(rhs.detach())
        out = y + self.zero.to(y.dtype)
        out.register_hook(lambda g: self.record.grads.append(g.detach()))
        return out


class _Operand(torch.nn.Module):
    """A tapped layer's operand as a policy check (check.py) sets it: as it is (`spec` None) or
    fake-quantized along `axis`; a constant (a weight) is fake-quantized once per spec."""

    def __init__(self, axis: int, constant: bool):
        super().__init__()
        self.axis, self.constant, self.spec = axis, constant, None
        self._cached: tuple = (None, None)

    def forward(self, t):
        if self.spec is None:
            return t
        if not self.constant:
            return _fq(t.float(), self.spec, self.axis).to(t.dtype)
        if self._cached[0] != self.spec:
            self._cached = (self.spec, _fq(t.float(), self.spec, self.axis).to(t.dtype))
        return self._cached[1]

    def release(self) -> None:
        """Drop the fake-quantized constant (kept while `spec` is None, for the next policy that wants it)."""
        self._cached = (None, None)


def tap_graph(model: torch.nn.Module, inputs: tuple, layers: set[str]) -> tuple[torch.fx.GraphModule, dict]:
    """The exported graph with a `_Tap` after each layer of `layers` (names as mxc gives them), and an
    `_Operand` before each of its two operands (identities until a policy check sets them)."""
    gm = export(model, inputs).module()
    nodes = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in _MATMULS | _CONVS]
    names = unique_layer_names([module_path(n) or f"torch.aten.{n.target._opname}" for n in nodes])
    records: dict[str, Tapped] = {}
    for node, name in zip(nodes, names):
        if name not in layers:
            continue
        a_i, w_i, w_axis = (0, 1, -1) if node.target in _CONVS else _ARG_POSITIONS.get(node.target, (0, 1, -2))
        rhs = node.args[w_i]
        args = [operator.attrgetter(a.target)(gm).detach() if isinstance(a, torch.fx.Node) and a.op == "get_attr"
                else None if isinstance(a, torch.fx.Node) else a for a in node.args]
        w_val = args[w_i] if isinstance(args[w_i], torch.Tensor) else rhs.meta.get("val")
        dtype = getattr(w_val, "dtype", torch.float32)
        rec = records[name] = Tapped(node.target, args, a_i, w_i, w_axis, str(node.args[a_i]),
                                     16 if dtype in (torch.bfloat16, torch.float16) else 32,
                                     rhs.target if rhs.op == "get_attr" else None)
        mod = rec.module = f"_mxc_tap_{len(records)}"
        gm.add_submodule(mod, _Tap(rec, rhs.op != "get_attr"))
        with gm.graph.inserting_after(node):
            tap = gm.graph.call_module(mod, (node, node.args[a_i], rhs))
        node.replace_all_uses_with(tap, delete_user_cb=lambda user: user is not tap)
        if node.target not in _CONVS:  # (the check leaves convolutions as they are: see check.py)
            for index, axis, constant in ((a_i, -1, False), (w_i, w_axis, rhs.op == "get_attr")):
                gm.add_submodule(f"{mod}_operand{index}", _Operand(axis, constant))
                with gm.graph.inserting_before(node):
                    node.update_arg(index, gm.graph.call_module(f"{mod}_operand{index}", (node.args[index],)))
    missing = layers - set(records)
    if missing:
        raise AutoError(f"the exported graph has no layer {sorted(missing)[:3]} that convert-torch-to-mxq named; "
                        "the model changed between exports?")
    gm.recompile()
    return gm, records


def calibrate(model: torch.nn.Module, batches: list[tuple], layers: set[str], loss_fn=None,
              progress=None, graph: list | None = None) -> dict[str, Tapped]:
    """Run every calibration batch forward and backward through the tapped graph. A loss that cannot
    be differentiated leaves every record without gradients: its layers are scored with g = 1.
    `graph`, when given, receives the tapped graph (for a policy check, check.py)."""
    gm, records = tap_graph(model, batches[0], layers)
    probe = torch.Generator().manual_seed(0)
    differentiable = True
    params = [p for p in gm.parameters() if p.requires_grad]
    try:  # the taps' zeros carry the gradients to the layers' outputs: no weight gradients are computed or kept
        for p in params:
            p.requires_grad_(False)
        for batch in batches:
            with torch.enable_grad():
                out = gm(*batch)
                differentiable = differentiable and _backward(out, batch, loss_fn, probe)
            if progress:
                progress()
    finally:
        for p in params:
            p.requires_grad_(True)
    if not differentiable:
        for rec in records.values():
            rec.grads.clear()
    if graph is not None:
        graph.append(gm)
    return records


def _backward(out, batch, loss_fn, probe: torch.Generator) -> bool:
    """Backpropagate the loss (or a random projection of the outputs); False when that is impossible."""
    try:
        if loss_fn is not None:
            loss = loss_fn(out, *batch)
        else:
            outs = [t for t in _flatten(out) if t.is_floating_point()]
            loss = sum((t.float() * torch.randn(t.shape, generator=probe)).sum() for t in outs)
        if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
            raise RuntimeError("the loss does not depend on the layers' outputs")
        loss.backward()
        return True
    except Exception as e:  # noqa: BLE001 -- any failure to differentiate falls back, with a warning
        warnings.warn(f"--auto: the loss cannot be differentiated ({type(e).__name__}: {str(e)[:200]}); "
                      "layers are scored by their plain output error", MxcWarning, stacklevel=2)
        return False


def layer_output(rec: Tapped, act: torch.Tensor, rhs: torch.Tensor, choice: Choice | None = None) -> torch.Tensor:
    """The layer's output without bias, in float32, from `act` and `rhs` quantized as `choice` says
    (None: as they are). Biases cancel in Y_q - Y."""
    wfmt, afmt = (choice.weight, choice.act) if choice else (None, None)
    if rec.target in _CONVS:
        full = list(rec.args) + [None, None, None, (1, 1), (0, 0), (1, 1), 1][len(rec.args):]
        stride, padding, dilation, groups = full[3:7]
        return _FakeQuantConv2d(afmt, wfmt)(act.float(), rhs.float(), None, stride, padding, dilation, groups)
    return product(rec, _fq(act.float(), afmt, -1), _fq(rhs.float(), wfmt, rec.w_axis))


def product(rec: Tapped, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A matmul layer's output without bias from its (quantized) operands."""
    return x @ (w.T if rec.target is torch.ops.aten.linear.default else w)
