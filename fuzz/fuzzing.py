"""What every atheris target here shares: the corpora named on the command line seeded,
the address space capped, the libFuzzer loop."""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from pathlib import Path

import atheris

# A bad input may cost the parser some memory, not gigabytes: capping the address space at
# this much over the start-up size turns a runaway allocation into a MemoryError, which is
# reported as a crash, instead of a host brought down by the OOM killer.
HEADROOM = 1 << 30


def fuzz(test_one_input: Callable[[bytes], None], seed_corpus: Callable[[Path], None]) -> None:
    """Seed the corpus directories named on the command line, cap the address space, fuzz."""
    for arg in sys.argv[1:]:
        # Directories are corpora; a file argument is an input to replay (a crash).
        if not arg.startswith("-") and not Path(arg).is_file():
            seed_corpus(Path(arg))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as status:
        vm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    cap = (vm_kib << 10) + HEADROOM
    resource.setrlimit(
        resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard)
    )
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
