"""Speed benchmarks (`make bench`): each stage against the straightforward way, side by side.

`python -m bench.run` measures every section in one run on this machine and writes
bench/results.json and bench/results.md. Ratios always come from two measurements taken
in the same run, interleaved, so a busy machine slows both sides alike.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the repository root: configs/, soundfonts/, bench/
