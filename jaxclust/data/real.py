"""Real data sets that ship inside installed packages (no download)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

__all__ = ["load_digits_classes"]


def load_digits_classes(
    classes: Sequence[int] = (3, 8),
    n_per_class: int | None = None,
    *,
    key: PRNGKeyArray | None = None,
    seed: int | None = None,
    scale: bool = True,
) -> tuple[Float[Array, "n 64"], Int[Array, " n"]]:
    """Load the 8x8 handwritten digits of some classes from scikit-learn.

    The UCI optical digits (1,797 images, about 180 per class) ship inside
    scikit-learn as ``sklearn.datasets.load_digits``, so nothing is downloaded. Each
    image is flattened to 64 pixel intensities.

    Args:
        classes: the digits to keep, e.g. ``(3, 8)``; the output groups them in this order.
        n_per_class: how many images to keep per class, drawn without replacement.
            ``None`` keeps all of them, in the data set's order.
        key: PRNG key for the subsample (keyword-only). Give ``key`` or ``seed``.
        seed: integer seed, used as ``jax.random.key(seed)`` when ``key`` is not given.
            With neither, the subsample uses seed 0.
        scale: divide the pixel intensities (integers 0..16) by 16, into ``[0, 1]``.

    Returns:
        ``(x, labels)``: images, ``float32`` of shape ``(n, 64)``, and their digit,
        ``int32`` of shape ``(n,)``, where ``n = len(classes) * n_per_class`` when
        ``n_per_class`` is given.

    Raises:
        ImportError: if scikit-learn is missing (``pip install "jaxclust[data]"``).
        ValueError: if a class is not a digit 0..9, is repeated, or has fewer than
            ``n_per_class`` images.

    Example:
        >>> from jaxclust.data import load_digits_classes
        >>> x, labels = load_digits_classes((3, 8), n_per_class=100, seed=0)
        >>> x.shape, x.dtype, sorted(set(labels.tolist()))
        ((200, 64), dtype('float32'), [3, 8])
        >>> float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        True
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_digits_classes needs scikit-learn: pip install 'jaxclust[data]'"
        ) from err

    try:
        classes = [int(c) for c in classes]
    except (TypeError, ValueError):
        raise ValueError(f"`classes` must be a sequence of digits, e.g. classes=(3, 8), got "
                         f"{classes!r}.") from None
    if not classes:
        raise ValueError("`classes` must name at least one digit, e.g. classes=(3, 8).")
    if any(c < 0 or c > 9 for c in classes):
        raise ValueError(f"`classes` must be digits 0..9, got {classes}.")
    if len(set(classes)) != len(classes):
        raise ValueError(f"`classes` must not repeat a digit, got {classes}.")
    if n_per_class is not None and int(n_per_class) <= 0:
        raise ValueError(f"`n_per_class` must be positive or None, got {n_per_class}.")
    if key is None:
        try:
            key = jax.random.key(0 if seed is None else int(seed))
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"`seed` must be an integer in [-2**63, 2**64), got {seed!r}."
                             ) from None
    else:
        from ..train import check_key

        key = check_key(key)

    digits = load_digits()
    images = np.asarray(digits.data, dtype=np.float32)
    targets = np.asarray(digits.target)
    xs, ys = [], []
    for i, c in enumerate(classes):
        idx = np.flatnonzero(targets == c)
        if n_per_class is not None:
            if n_per_class > idx.size:
                raise ValueError(
                    f"`n_per_class`={n_per_class} but digit {c} has only {idx.size} images; "
                    f"use n_per_class <= {idx.size}."
                )
            perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, i), idx.size))
            idx = np.sort(idx[perm[: int(n_per_class)]])
        xs.append(images[idx])
        ys.append(np.full(idx.size, c, dtype=np.int32))
    x = np.concatenate(xs, axis=0)
    if scale:
        x = x / np.float32(16.0)
    return jax.numpy.asarray(x, dtype=np.float32), jax.numpy.asarray(np.concatenate(ys))
