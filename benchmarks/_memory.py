"""Peak resident memory of the running process, for the benchmarks' child processes."""

import resource


def peak_rss_mib() -> float:
    """This process's peak resident set in MiB: ``VmHWM`` of ``/proc/self/status``, which
    starts afresh at ``exec``. (``getrusage``'s ``ru_maxrss`` does not: on Linux it keeps
    the high-water mark of the forked copy of the parent, so a child started by a big
    parent reports the parent's size.) Falls back to ``ru_maxrss`` off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
