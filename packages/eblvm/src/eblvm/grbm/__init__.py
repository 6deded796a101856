"""The GRBM family: checkerboard, digits and Frey face, log-likelihood by exact log Z or
AIS, the paper's GRBM experiments as presets."""

from eblvm.grbm.presets import GRBM_PRESETS
from eblvm.grbm.task import GRBMTask, estimate_log_partition, mean_log_likelihood

__all__ = ["GRBM_PRESETS", "GRBMTask", "estimate_log_partition", "mean_log_likelihood"]
