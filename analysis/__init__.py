"""Analysis of sweep results: the paper's tables with significance marks, its figures, and the checks around them.

Modules: `load` (read and validate experiment directories), `aggregate` (means, sd, n, configuration
selection), `selection` (the selection rule, shared with the sweeper), `stats` (the bootstrapped paired
t-test and diagnostics), `power` (seeds needed), `tables` (Tables 1-3 and generalized matrices;
CSV/LaTeX/Markdown), `figures` (Figures 2-5),
`distances` (typological distances), `paper` (the paper's reported numbers), `report` (CLI and
`render_report`). `testing` writes schema-conformant fake results for tests and benchmarks.
"""
