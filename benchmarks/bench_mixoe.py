"""MixOE vs outlier exposure and energy fine-tuning on digits (ID 0-4, OOD 5-9), 5 seeds.

    python benchmarks/bench_mixoe.py              # writes benchmarks/results/mixoe.md
    python benchmarks/bench_mixoe.py --seeds 1 --out /tmp/mixoe.md

Claim (issue 19, from "Mixture Outlier Exposure", Zhang et al. WACV 2023): mixing ID data
with auxiliary outliers under linearly decaying targets detects *fine-grained* OOD better
than outlier exposure or energy fine-tuning with the same outliers. Setup of
``jaxclust.demo.ood`` (as in ``bench_ood.py``): ID = digits 0-4 (train / test split by the
seed), fine-grained OOD = digits 5-9, far OOD = flower-image patches; the auxiliary
outliers are 2,000 8x8 patches of the china image (never digits). Per seed one MLP
64-256-128-5 is trained (1,500 AdamW steps) and then fine-tuned from the same weights, each
method with 1,000 AdamW steps (lr 3e-4, batches of 128 ID + 128 outliers):

* OE: ``ood.outlier_exposure_loss`` (weight 0.5, the paper's);
* energy: ``jaxclust.demo.ood.finetune_energy`` (energy-regularised loss, weight 0.1,
  margins at this model's scale);
* MixOE-mixup / MixOE-cutmix: ``ood.mixoe_mix`` (alpha 1, cutmix on the 8x8 image) +
  ``ood.mixoe_loss`` (weight 1, the reference's defaults).

Scores: MSP (the MixOE paper's) and energy, for every model. AUROC and FPR@95 (ID positive)
in %, mean ± std over seeds; ID test accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _common, and jaxclust from this checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine_lines, md_table  # noqa: E402

from jaxclust import ood  # noqa: E402
from jaxclust.demo import ood as demo  # noqa: E402
from jaxclust.metrics.detection import auroc, fpr_at_tpr  # noqa: E402

STEPS, LR, BATCH = 1000, 3e-4, 128


def finetune(params, x, y, outliers, key, method):
    n_out = outliers.shape[0]

    def loss_fn(p, xb, yb, k):
        ob = outliers[jax.random.randint(jax.random.fold_in(k, 1), (xb.shape[0],), 0, n_out)]
        if method == "OE":
            return ood.outlier_exposure_loss(demo.logits(p, xb), yb, demo.logits(p, ob),
                                             weight=0.5)
        mode = "cutmix" if method.endswith("cutmix") else "mixup"
        shape = (xb.shape[0], 8, 8)
        mixed, lam = ood.mixoe_mix(jax.random.fold_in(k, 2), xb.reshape(shape),
                                   ob.reshape(shape), mode=mode)
        return ood.mixoe_loss(demo.logits(p, xb), yb, demo.logits(p, mixed.reshape(xb.shape)),
                              lam, weight=1.0)

    if method == "energy":
        return demo.finetune_energy(params, x, y, outliers, key, steps=STEPS, lr=LR,
                                    batch=BATCH)
    return demo._train(params, loss_fn, STEPS, LR, key, BATCH, x, y)[0]


def one_seed(seed):
    data = demo.load_data(seed)
    k_train, k_ft = jax.random.split(jax.random.key(seed))
    base = demo.train_classifier(data.x_train, data.y_train, k_train)
    outliers = jnp.asarray(demo.image_patches(0, 2000, seed=1000 + seed), jnp.float32)
    models = {"plain": base}
    for m in ("OE", "energy", "MixOE-mixup", "MixOE-cutmix"):
        models[m] = finetune(base, data.x_train, data.y_train, outliers, k_ft, m)
    out = {}
    for name, p in models.items():
        acc = float(jnp.mean(jnp.argmax(demo.logits(p, data.x_test), 1) == data.y_test))
        for score_name, score in (("MSP", ood.msp), ("energy", ood.energy)):
            s_id = np.asarray(score(demo.logits(p, data.x_test)))
            for set_name in ("digits 5-9", "flower patches"):
                s_ood = np.asarray(score(demo.logits(p, data.ood[set_name])))
                s = jnp.asarray(np.r_[s_id, s_ood])
                lab = jnp.asarray(np.r_[np.ones(len(s_id), int), np.zeros(len(s_ood), int)])
                out[(name, score_name, set_name)] = (float(auroc(s, lab)),
                                                     float(fpr_at_tpr(s, lab)))
        out[(name, "acc")] = acc
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "mixoe.md"))
    args = ap.parse_args()
    runs = []
    for s in range(args.seeds):
        runs.append(one_seed(s))
        print(f"seed {s} done", flush=True)
    ms = lambda v: f"{100 * np.mean(v):.1f} ± {100 * np.std(v):.1f}"  # noqa: E731
    rows = []
    for name in ("plain", "OE", "energy", "MixOE-mixup", "MixOE-cutmix"):
        for score_name in ("MSP", "energy"):
            row = [name, score_name]
            for set_name in ("digits 5-9", "flower patches"):
                vals = np.array([r[(name, score_name, set_name)] for r in runs])
                row += [ms(vals[:, 0]), ms(vals[:, 1])]
            row.append(ms([r[(name, "acc")] for r in runs]))
            rows.append(row)
    lines = ["# MixOE vs outlier exposure and energy fine-tuning (digits 0-4 vs 5-9)", "",
             *machine_lines(("jax", "optax", "numpy")), "",
             "Script: `benchmarks/bench_mixoe.py` (its docstring states the protocol). "
             f"Mean ± std over {args.seeds} seeds, in %. FPR@95: ID positive.", "",
             md_table(["model", "score", "AUROC 5-9", "FPR@95 5-9", "AUROC flower",
                       "FPR@95 flower", "ID acc"], rows), ""]
    print("\n".join(lines))
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
