"""The workers' metric values (issue 15): written per process without a getpid per
write, and a plan's histogram observed as prometheus_client observes it."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

from prometheus_client import CollectorRegistry, Histogram

from vodedge.edge.metrics import _observer

# In a fresh process: metric values as `vodedge serve` sets them up, a counter written
# before and after a fork by both processes, then every process's file read back.
FORKED = textwrap.dedent(
    """
    import os, sys, tempfile
    folder = tempfile.mkdtemp()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    from vodedge.node.serve import metric_values
    metric_values()
    metric_values()  # a second call changes nothing
    from prometheus_client import CollectorRegistry, Counter, values
    from prometheus_client.multiprocess import MultiProcessCollector
    assert values.ValueClass._vodedge_pid
    counter = Counter("forked", "writes", ["side"])
    counter.labels("parent").inc(1)
    child = os.fork()
    if child == 0:
        counter.labels("child").inc(5)
        counter.labels("parent").inc(100)  # the child's own count of this child
        os._exit(0)
    os.waitpid(child, 0)
    counter.labels("parent").inc(2)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    totals = {
        sample.labels["side"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "forked_total"
    }
    files = sorted(os.listdir(folder))
    print(totals["parent"], totals["child"], files == sorted(
        [f"counter_{os.getpid()}.db", f"counter_{child}.db"]
    ))
    """
)


def test_a_forked_worker_writes_its_own_values() -> None:
    """After a fork each process writes its own file: nothing of one is lost or counted
    twice by the other (the parent's 3, the child's 5 and 100)."""
    done = subprocess.run(
        [sys.executable, "-c", FORKED], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["103.0", "5.0", "True"]


def test_a_plan_is_observed_as_histogram_observe_does() -> None:
    """The same buckets and sum as Histogram.observe for amounts on, between and past
    the bounds, negative, infinite and not a number."""
    buckets = (0.0005, 0.001, 0.0025, 0.005, 0.01, 1.0)
    registry = CollectorRegistry()
    ours = Histogram("ours", "h", ["kind"], buckets=buckets, registry=registry)
    theirs = Histogram("theirs", "h", ["kind"], buckets=buckets, registry=registry)
    observe = _observer(ours.labels("mp4"))
    amounts = [0.0, 0.0005, 0.00050001, 0.001, 0.003, 0.01, 0.5, 1.0, 2.0, -1.0, math.inf]
    for amount in [*amounts, math.nan]:
        observe(amount)
        theirs.labels("mp4").observe(amount)
    mine = [b.get() for b in ours.labels("mp4")._buckets]
    assert mine == [b.get() for b in theirs.labels("mp4")._buckets]
    assert sum(mine) == len(amounts)  # NaN in no bucket
    assert math.isnan(ours.labels("mp4")._sum.get())
    assert math.isnan(theirs.labels("mp4")._sum.get())
