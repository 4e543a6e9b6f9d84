"""Reference endpoint picker (EPP): a Python drop-in for the llm-d / GAIE endpoint picker.

The scheduling decision is a pure function (see :mod:`scheduler_ref.scheduler`) so it can be
benchmarked, fuzzed and replayed; everything that touches the network lives in thin shells
(:mod:`extproc`, :mod:`scrape`, :mod:`discovery`).
"""

__all__: list[str] = []
