"""Data sets for examples, demos and tests.

Two kinds, both returning ``float32`` features and ``int32`` labels:

- synthetic generators, pure JAX functions of an explicit ``key``
  ([`gaussian_mixture`][jaxclust.data.gaussian_mixture]);
- real data sets that ship inside installed packages, so nothing is downloaded
  ([`load_digits_classes`][jaxclust.data.load_digits_classes], which needs the ``data``
  extra: ``pip install "jaxclust[data]"``).
"""

from jaxclust.data.real import load_digits_classes as load_digits_classes
from jaxclust.data.synthetic import gaussian_mixture as gaussian_mixture

__all__ = ["gaussian_mixture", "load_digits_classes"]
