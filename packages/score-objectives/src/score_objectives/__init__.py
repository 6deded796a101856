"""Score-matching objectives as pure functions of a score function ``score_fn(v)``.

Each objective works with an exact score and with an estimated one whose
output carries an autograd graph to the model's parameters: back-propagating
the returned loss gives those parameters their gradient.
"""

from .dsm import dsm
from .ksd import ksd, median_bandwidth, rbf_stein_kernel
from .mdsm import mdsm, noise_levels
from .sm import sm
from .ssm import ssm

__all__ = [
    "dsm",
    "ksd",
    "mdsm",
    "median_bandwidth",
    "noise_levels",
    "rbf_stein_kernel",
    "sm",
    "ssm",
]
__version__ = "0.4.0"
