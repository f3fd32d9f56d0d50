"""Where a benchmark configuration spends its time: py-spy samples, summed per function.

    python -m benchmarks.profile [--top N] [--native] -- COMMAND...

e.g. `python -m benchmarks.profile -- python -m benchmarks.child out.json floor events.jsonl`.
Runs COMMAND under `py-spy record` (every thread and subprocess; idle
samples left out, as py-spy does by default) and prints the functions with the most samples: self (the function itself
was running) and total (it was on the stack), as shares of all samples.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path


def summarise(collapsed: str, top: int, lines: bool = False) -> str:
    """A table of the `top` functions (or source `lines`) by self and by total samples,
    from py-spy's raw output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(frame, lines) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    rows = [f"{samples:,} samples", f"{'self':>6} {'total':>6}  function"]
    for frame, count in own.most_common(top):
        rows.append(f"{count / samples:6.1%} {total[frame] / samples:6.1%}  {frame}")
    return "\n".join(rows)


def _short(frame: str, lines: bool) -> str:
    """`function (path/to/module.py:line)` as `function (module.py)`, or with `lines` `(module.py:line)`."""
    name, _, where = frame.partition(" (")
    if not where:
        return name
    path, _, line = where.rstrip(")").rpartition(":")
    return f"{name} ({Path(path).name}:{line})" if lines else f"{name} ({Path(path).name})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--native", action="store_true", help="include native frames")
    parser.add_argument("--lines", action="store_true", help="per source line, not per function")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "profile.txt"
        py_spy = Path(sys.executable).with_name("py-spy")
        if not py_spy.exists():
            sys.exit(f"no py-spy beside {sys.executable}: install the dev extras (make setup)")
        subprocess.run(
            [str(py_spy), "record", "--format", "raw", "--rate", str(args.rate), "--subprocesses",
             "--output", str(output), *(["--native"] if args.native else []),
             "--", *command],
            check=True,
        )  # fmt: skip
        print(summarise(output.read_text(), args.top, args.lines))


if __name__ == "__main__":
    main()
