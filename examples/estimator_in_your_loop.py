"""VaGES inside your own PyTorch training loop.

A Gaussian-Bernoulli RBM (ebm-models) learns the checkerboard (eblvm-data) by
denoising score matching (score-objectives), with its score estimated by VaGES
(score-estimators) from a Bernoulli (Gumbel-softmax) posterior q(h | v) fitted for a
few steps at every iteration. The loop is plain PyTorch: two Adam optimisers, one
backward pass per step. At the end it compares the VaGES score with the GRBM's exact
score, prints the test log-likelihood (exact log Z) and saves the model's density.

    python examples/estimator_in_your_loop.py            # a few minutes on a laptop CPU
    python examples/estimator_in_your_loop.py --tiny     # seconds: a check that it runs
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from eblvm_data import CHECKERBOARD_LOG_DENSITY, checkerboard_splits
from eblvm_eval import density_plot, exact_log_partition, log_likelihood
from ebm_models import GRBM
from score_estimators import BernoulliPosterior, PosteriorSampler, VaGES, fit_posterior
from score_objectives import dsm

SIGMA = 0.05  # DSM's noise scale
POSTERIOR_STEPS = 5  # K: steps on q per iteration


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: CI's check")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/examples/...")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def relative_error(estimate: Tensor, exact: Tensor) -> float:
    """‖estimate − exact‖ / ‖exact‖ over all examples: (B, D) each."""
    return float((estimate - exact).norm() / exact.norm())


def vages_score(
    grbm: GRBM, posterior: PosteriorSampler, v: Tensor, *, n_samples: int, seed: int
) -> Tensor:
    """The VaGES estimate of the score at v: (B, D), from ``n_samples`` draws of q."""
    generator = torch.Generator().manual_seed(seed)
    return VaGES(n_samples)(grbm, posterior, v, generator=generator).detach()


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    out = args.out or Path(f"runs/examples/estimator_in_your_loop{'-tiny' if args.tiny else ''}")
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # a model this small gains nothing from more threads
    iterations, n_train, batch_size = (300, 2000, 100) if args.tiny else (15_000, 20_000, 100)
    data = checkerboard_splits(n_train=n_train)

    # --8<-- [start:loop]
    h_dim = 4
    grbm = GRBM(2, h_dim, weight_std=0.5)
    with torch.no_grad():
        grbm.b.copy_(data.train.mean(0))
    posterior = BernoulliPosterior(nn.Linear(2, h_dim), temperature=0.1)
    theta_opt = torch.optim.Adam(grbm.parameters(), lr=3e-3, betas=(0.9, 0.95))
    phi_opt = torch.optim.Adam(posterior.parameters(), lr=3e-3, betas=(0.9, 0.95))
    estimator = VaGES(n_samples=2)

    start, running = time.perf_counter(), 0.0
    for iteration in range(1, iterations + 1):
        v = data.train[torch.randint(len(data.train), (batch_size,))]
        noise = torch.randn_like(v)
        noisy = v + SIGMA * noise
        # q(h | v) is fitted where DSM takes the score: at the noisy points.
        fit_posterior(grbm, posterior, noisy, phi_opt, steps=POSTERIOR_STEPS)
        loss = dsm(lambda x: estimator(grbm, posterior, x), v, sigma=SIGMA, noise=noise)
        theta_opt.zero_grad()
        loss.backward(inputs=list(grbm.parameters()))  # the VaGES gradient of DSM
        theta_opt.step()
        # --8<-- [end:loop]
        running += float(loss.detach())
        if iteration % (iterations // 10) == 0:
            print(
                f"iteration {iteration:6d}  DSM loss {running / (iterations // 10):9.2f}  "
                f"{time.perf_counter() - start:5.1f} s"
            )
            running = 0.0

    # The VaGES score against the exact one on test points, q fitted there first.
    test = data.test[:1000]
    fit_posterior(grbm, posterior, test, phi_opt, steps=50)
    exact = grbm.score(test).detach()
    print("\nscore at 1000 test points, relative error ‖ŝ − s‖ / ‖s‖ against the exact score:")
    for label, q, n in (
        ("VaGES, fitted q, L = 2 (as in training)", posterior, 2),
        ("VaGES, fitted q, L = 500", posterior, 500),
        ("VaGES, exact posterior, L = 500", grbm.exact_posterior(), 500),
    ):
        estimate = vages_score(grbm, q, test, n_samples=n, seed=args.seed)
        print(f"  {label:42s} {relative_error(estimate, exact):.4f}")

    with torch.no_grad():
        log_z = exact_log_partition(grbm)
        test_ll = float(log_likelihood(grbm, data.test, log_z=log_z).mean())
    print(
        f"\ntest log-likelihood {test_ll:.4f} nats (exact log Z = {float(log_z):.4f}); "
        f"the data's own: {CHECKERBOARD_LOG_DENSITY:.4f}"
    )
    path = density_plot(
        lambda x: log_likelihood(grbm, x, log_z=log_z),
        data.test[:5000],
        path=out / "density.png",
        bounds=((-0.25, 1.25), (-0.25, 1.25)),
        resolution=60 if args.tiny else 150,
        title=f"GRBM (h = {h_dim}) trained by VaGES-DSM, {iterations} iterations",
    )
    print(f"density: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
