"""OpenMP worker threads that sleep while they wait, instead of spinning.

torch's OpenMP runtime (libgomp) reads ``OMP_WAIT_POLICY`` once, when torch loads, so
this module is imported before torch by ``eblvm`` (the command imports nothing else
first). With spinning workers, two threads on a machine whose other core is busy run a
deep step ≈ 5–10× slower than one thread; sleeping workers make them ≈ 1.5× faster (see
the README's "Deep step speed on a CPU"). A value set by the user is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
