"""The words of `--auto`'s record, one place for the policy file's header, `mxc inspect` and the compile
summary (no torch: inspect reads manifests)."""

from __future__ import annotations


def final_text(final) -> str:
    """The final check's verdict (the manifest's `auto.check.final`) in words."""
    if isinstance(final, dict):
        kept = "the knapsack's policy" if final["kept"] == "knapsack" else f"the uniform {final['uniform']} policy"
        return (f"kept {kept}: held-out loss of the knapsack's {final['knapsack_loss']:.5g}, of the uniform "
                f"{final['uniform']} {final['uniform_loss']:.5g}")
    return final or "none"
