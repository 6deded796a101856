"""The paper's experiments beyond single runs: comparisons of methods over seeds, and
the appendix F.3 (learned Fisher divergence) and F.4 (bias against divergence) drivers
with their figures and reports."""
