"""OOD detection benchmark on scikit-learn's digits: every post-hoc score, 5 seeds.

    python benchmarks/bench_ood.py              # 5 seeds, writes benchmarks/results/ood.md
    python benchmarks/bench_ood.py --seeds 1    # quick look, prints only

Setup (``jaxclust.demo.ood``): ID = digits 0-4 (half for training, half for testing, split
by the seed), near-OOD = digits 5-9, far-OOD = 8x8 patches of scikit-learn's two sample
images (china, flower) and uniform noise. Per seed, an MLP 64-256-128-5 is trained with
optax (AdamW, 1,500 steps of 128) and every score of ``jaxclust.ood`` is fitted on the ID
training set. AUROC and FPR@95 are given as mean ± std over the seeds, FPR@95 in both
conventions (ID positive, the classic one; OOD positive, OpenOOD v1.5's).

Energy fine-tuning (Liu et al. 2020): the trained MLP is fine-tuned with the
energy-regularised loss (weight 0.1, 1,000 steps of 128 + 128 outliers, margins at the
scale of this model: see ``jaxclust.demo.ood.finetune_energy``) with 2,000 auxiliary outliers that are
patches of the china image only (drawn with another seed than the test patches), and
evaluated with the energy score on the flower patches and digits 5-9, against the energy
score of the same MLP before fine-tuning.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _common, and jaxclust from this checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine_lines, md_table  # noqa: E402

from jaxclust import ood  # noqa: E402
from jaxclust.demo import ood as demo  # noqa: E402


def one_seed(seed: int):
    data = demo.load_data(seed)
    key = jax.random.key(seed)
    k_train, k_ft = jax.random.split(key)
    params = demo.train_classifier(data.x_train, data.y_train, k_train)
    acc = float(jnp.mean(jnp.argmax(demo.logits(params, data.x_test), 1) == data.y_test))
    runs, _ = demo.evaluate(demo.post_hoc_scores(params, data.x_train, data.y_train),
                            data.x_test, data.ood)
    # energy fine-tuning with outliers from the china image only
    outliers = jnp.asarray(demo.image_patches(0, 2000, seed=1000 + seed), jnp.float32)
    tuned = demo.finetune_energy(params, data.x_train, data.y_train, outliers, k_ft)
    acc_ft = float(jnp.mean(jnp.argmax(demo.logits(tuned, data.x_test), 1) == data.y_test))
    eval_sets = {k: data.ood[k] for k in ("flower patches", "digits 5-9", "china patches")}
    energy = {"energy (plain)": lambda x: ood.energy(demo.logits(params, x)),
              "energy (fine-tuned)": lambda x: ood.energy(demo.logits(tuned, x))}
    ft_runs, _ = demo.evaluate(energy, data.x_test, eval_sets)
    return runs, ft_runs, acc, acc_ft


def _mean_std(values):
    v = 100 * np.asarray(values)
    return f"{v.mean():.1f} ± {v.std():.1f}"


def tables(all_runs):
    sets = list(dict.fromkeys(r.ood_set for r in all_runs[0]))
    names = list(dict.fromkeys(r.score for r in all_runs[0]))
    cell = {}
    for runs in all_runs:
        for r in runs:
            cell.setdefault((r.score, r.ood_set), []).append(r)
    rows_auc, rows_fpr = [], []
    for n in names:
        rows_auc.append([n] + [_mean_std([r.auroc for r in cell[(n, s)]]) for s in sets])
        rows_fpr.append([n] + [f"{_mean_std([r.fpr95 for r in cell[(n, s)]])} / "
                               f"{_mean_std([r.fpr95_ood for r in cell[(n, s)]])}"
                               for s in sets])
    return sets, rows_auc, rows_fpr, cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=str(HERE / "results" / "ood.md"))
    args = parser.parse_args()

    start = time.perf_counter()
    all_runs, all_ft, accs, accs_ft = [], [], [], []
    for seed in range(args.seeds):
        runs, ft, acc, acc_ft = one_seed(seed)
        all_runs.append(runs)
        all_ft.append(ft)
        accs.append(acc)
        accs_ft.append(acc_ft)
        print(f"seed {seed}: test accuracy {100 * acc:.1f}% (fine-tuned {100 * acc_ft:.1f}%), "
              f"{time.perf_counter() - start:.0f} s", flush=True)

    sets, rows_auc, rows_fpr, cell = tables(all_runs)
    ft_sets, ft_auc, ft_fpr, _ = tables(all_ft)
    best = {s: max((np.mean([r.auroc for r in cell[(n, s)]]), n)
                   for n in dict.fromkeys(r.score for r in all_runs[0])) for s in sets}
    lines = ["# OOD detection benchmark (digits)", ""]
    lines += machine_lines(("jax", "jaxlib", "optax", "numpy", "scikit-learn"))
    lines += [
        f"- {args.seeds} seeds (0-{args.seeds - 1}); mean ± std over seeds, in %; "
        f"wall time {time.perf_counter() - start:.0f} s",
        f"- MLP test accuracy on digits 0-4: {_mean_std(accs)} "
        f"(after energy fine-tuning: {_mean_std(accs_ft)})",
        "- every score: higher = more in-distribution; ID = digits 0-4 test half (~450 images), "
        "near-OOD = digits 5-9 (896), far-OOD = 500 patches of each sample image, 500 "
        "uniform-noise images",
        "",
        "## AUROC (%)",
        "",
        md_table(["score"] + sets, rows_auc),
        "",
        "## FPR@95 (%): ID positive (classic) / OOD positive (OpenOOD v1.5)",
        "",
        md_table(["score"] + sets, rows_fpr),
        "",
        "Best mean AUROC per set: " + "; ".join(f"{s}: {n} {100 * a:.1f}%"
                                               for s, (a, n) in best.items()),
        "",
        "## Energy-regularised fine-tuning (outliers: china-image patches only)",
        "",
        "AUROC (%):",
        "",
        md_table(["score"] + ft_sets, ft_auc),
        "",
        "FPR@95 (%), ID positive / OOD positive:",
        "",
        md_table(["score"] + ft_sets, ft_fpr),
        "",
        "The china-patch column is the outlier distribution seen in fine-tuning (other "
        "patches of the same image); flower patches and digits 5-9 were never seen.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.seeds >= 5:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
