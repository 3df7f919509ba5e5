"""Benchmarks behind ``make bench`` (issue #6): API economy, quota discipline, memory and parse time.

Run from the repository root with ``python -m bench`` (``make bench``). Every figure lands in
``bench/results.json`` as ``{name, value, unit, goal, met, note}`` and is printed as a table.
"""
