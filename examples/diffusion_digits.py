"""Diffusion score models on a 2-D mixture and on scikit-learn's digits.

Trains a noise-prediction MLP on eight Gaussians on a circle and a class-conditional MLP on
the 8x8 digits (scaled to [-1, 1], dequantised), both with denoising score matching under
the VP SDE, optax and an EMA of the weights. Prints the energy distance of the mixture
samples to fresh data beside the share of samples near each mode and the number of modes
covered (model, exact score, data) and the diffusion-classifier accuracy on the held-out
digits, and saves:

* ``diffusion_mixture.png``: data, model samples and exact-score samples of the 2-D mixture,
  modes circled at 3 std;
* ``diffusion_digits_samples.png``: ten class-conditional samples per digit (rows);
* ``diffusion_digits_guided.png``: the same with classifier-free guidance (scale 3);
* ``diffusion_digits_unconditional.png``: samples of the unconditional (null-class) model.

The same as ``jaxclust demo --section diffusion`` with larger settings
(``jaxclust.demo.diffusion.EXAMPLE``: a few minutes on a laptop CPU; ``--quick`` uses the
demo's). Run from the repository root::

    python examples/diffusion_digits.py --out out/diffusion_digits
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
from rich.console import Console

from jaxclust.demo.diffusion import (
    DEMO,
    EXAMPLE,
    levels_to_pixels,
    plot_grid,
    print_table,
    run_digits,
    run_mixture,
    sample,
    sample_outliers,
    sample_recognition,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/diffusion_digits", help="directory for figures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="the demo's smaller settings")
    args = parser.parse_args()

    config = DEMO if args.quick else EXAMPLE
    console = Console()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    console.print(f"2-D mixture: training ({config.mixture_steps} steps), sampling the model "
                  "and the exact score ...")
    rows, _ = run_mixture(config, seed=args.seed, progress=True, out=out)
    console.print(f"digits: training ({config.digits_steps} steps), classifying held-out "
                  "digits, sampling ...")
    digit_rows, data, res = run_digits(config, seed=args.seed, progress=True, out=out)
    print_table(console, rows + digit_rows)

    # guided and unconditional grids of the same model
    labels = jnp.repeat(jnp.arange(10), 10)
    key = jax.random.key(args.seed + 2)
    train_px, test_px = levels_to_pixels(data.train_levels), levels_to_pixels(data.test_levels)
    guided = sample(res.ema, key, shape=(100, 64), labels=labels, guidance=3.0,
                    n_steps=config.sample_steps)
    far_g = sample_outliers(guided, train_px, test_px)
    rec_g, rec_ref = sample_recognition(guided, labels, data)
    plot_grid(guided, out / "diffusion_digits_guided.png", cols=10,
              title=f"classifier-free guidance, scale 3:\n{100 * rec_g:.0f}% recognised as "
                    f"their class, {100 * far_g:.0f}% atypical")
    uncond = sample(res.ema, key, shape=(100, 64), n_steps=config.sample_steps)
    far_u = sample_outliers(uncond, train_px, test_px)
    plot_grid(uncond, out / "diffusion_digits_unconditional.png", cols=10,
              title=f"unconditional (null class): {100 * far_u:.0f}% atypical")
    console.print(f"guided samples recognised as their class (logistic regression on the "
                  f"training digits): {100 * rec_g:.0f}% (held-out digits {100 * rec_ref:.0f}%)"
                  f"; atypical (farther from every training digit than 99% of held-out "
                  f"digits): guided {100 * far_g:.0f}%, unconditional {100 * far_u:.0f}%")
    for name in ("mixture", "digits_samples", "digits_guided", "digits_unconditional"):
        console.print(f"saved {out / f'diffusion_{name}.png'}")


if __name__ == "__main__":
    main()
