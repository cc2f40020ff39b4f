"""mxc.selection: `mxc compile --auto`, the per-layer choice of formats and options under a budget.

budget.py (what --auto asks), candidates.py (what each layer may take), sensitivity.py (calibration
taps and gradients), scoring.py (each candidate's gradient-weighted output error), solver.py (the exact
choice under the budget), frontier.py (the predicted-loss frontier and its picture), search.py (the
whole search and the policy it writes).
"""
