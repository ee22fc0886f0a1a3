"""Benchmarks of the zoo against keras-hub: training throughput and MFU, generation speed,
serving latency. Run `python -m bench` (see `bench/__main__.py`); results go to
`bench/results/` and BENCHMARKS.md.

One file per kind of measurement: `training`, `generation`, `serving`; `configs` (the
workloads, built ours and keras-hub's), `flops` (the FLOP formula and the peak),
`timing` (interleaved runs, percentiles), `report` (JSON and the page).
keras-hub is optional and only imported by `configs.keras_hub_model`.
"""
