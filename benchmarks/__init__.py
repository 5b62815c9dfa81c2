"""The cost of security, side by side with the peers (issue 8, SPEC §8).

``python -m benchmarks`` starts each variant as a real uvicorn server on one CPU, loads it with
``wrk`` from another, and writes ``benchmarks/results/latest.json`` and ``latest.png``.
"""
