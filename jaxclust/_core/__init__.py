"""Shared internals of jaxclust: validation, fixed-point loops, pairwise costs.

Nothing here is public API; users import from ``jaxclust.ot`` and the other pillars.
"""
