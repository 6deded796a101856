"""asv suites: training iterations, AIS, KSD and the annealed Langevin sampler."""
