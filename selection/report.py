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


def checked_on(calibration: dict) -> str:
    """The batches the end-to-end checks ran on (the manifest's `auto.calibration`), in words."""
    held = calibration.get("checked_on")
    return f"{held} held-out calibration batch(es)" if isinstance(held, int) else "the one calibration batch"


def split_text(calibration: dict) -> str:
    """Which calibration batches the scores and the checks used; "" for manifests before the held-out split."""
    if "scored_on" not in calibration:
        return ""
    if isinstance(calibration["checked_on"], int):
        return f" (scores on the first {calibration['scored_on']}, checks on the last {calibration['checked_on']}, held out)"
    return f" (scores and checks on {calibration['checked_on']})"
