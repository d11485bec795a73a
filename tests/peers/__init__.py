"""Cases ported from the peers' own test suites (ott-jax, POT, scikit-learn, OpenOOD, kmedoids).

One module per peer test file; each module's docstring names the peer file (repository, path,
commit) and writes out how each API difference was translated. The peers' data, parameters and
expected values are kept.
"""
