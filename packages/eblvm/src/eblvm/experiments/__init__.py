"""The paper's experiments beyond single runs: comparisons of methods over seeds, the
appendix F.3 (learned Fisher divergence) and F.4 (bias against divergence) drivers with
their figures and reports, and the reproduction of the appendix's claims (``reproduce``:
each claim, its rule and its verdict, in one report)."""
