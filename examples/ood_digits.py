"""Out-of-distribution detection on scikit-learn's digits with every score of jaxclust.ood.

Trains a small MLP (optax) on the digits 0-4, fits every post-hoc score on its training
features and logits, and reports AUROC and FPR@95 (ID positive) against digits 5-9
(near-OOD), 8x8 patches of scikit-learn's sample images (far-OOD) and uniform noise. Saves
``ood_digits.png``: score histograms and ROC curves. With ``--finetune``, also fine-tunes the
MLP with the energy-regularised loss on patches of one sample image (china) and compares the
energy score before and after on the other image (flower) and on digits 5-9.
The same as ``jaxclust demo --section ood`` (without ``--finetune``).

Run from the repository root (about a minute on a laptop CPU)::

    python examples/ood_digits.py --out out/ood_digits --finetune
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
from rich.console import Console

from jaxclust import ood
from jaxclust.demo.ood import (
    evaluate,
    finetune_energy,
    image_patches,
    load_data,
    logits,
    plot_scores,
    post_hoc_scores,
    print_table,
    train_classifier,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/ood_digits", help="directory for the figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--finetune", action="store_true",
                        help="also run energy-regularised fine-tuning")
    args = parser.parse_args()

    console = Console()
    data = load_data(args.seed)
    k_train, k_ft = jax.random.split(jax.random.key(args.seed))
    console.print(f"training the MLP classifier on {data.x_train.shape[0]} digits 0-4 ...")
    params = train_classifier(data.x_train, data.y_train, k_train)
    acc = float(jnp.mean(jnp.argmax(logits(params, data.x_test), 1) == data.y_test))
    console.print(f"MLP on digits 0-4: test accuracy {100 * acc:.1f}%")
    console.print(f"fitting the post-hoc scores, evaluating them on {len(data.ood)} OOD sets "
                  "...")
    runs, raw = evaluate(post_hoc_scores(params, data.x_train, data.y_train), data.x_test,
                         data.ood)
    print_table(console, runs)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    console.print(f"saved {plot_scores(raw, out / 'ood_digits.png', runs=runs)}")

    if args.finetune:
        outliers = jnp.asarray(image_patches(0, 2000, seed=1000 + args.seed), jnp.float32)
        console.print("energy-regularised fine-tuning with 2000 china-image outliers ...")
        tuned = finetune_energy(params, data.x_train, data.y_train, outliers, k_ft)
        scores = {"energy (plain)": lambda x: ood.energy(logits(params, x)),
                  "energy (fine-tuned)": lambda x: ood.energy(logits(tuned, x))}
        sets = {k: data.ood[k] for k in ("flower patches", "digits 5-9")}
        ft_runs, _ = evaluate(scores, data.x_test, sets)
        print_table(console, ft_runs, title="energy fine-tuning with china-image outliers")


if __name__ == "__main__":
    main()
