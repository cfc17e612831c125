"""What one run of a task needs: CPUs, memory, time and GPUs.

A task's ``resources`` is a mapping of these names to whole numbers. Each
executor turns them into its own terms: ``sbatch`` flags on Slurm, runtime
limits for a container. An executor that cannot honour one says so in the
node's log rather than ignoring it silently.
"""
__all__ = ["RESOURCES", "resource_problem"]

# name -> (smallest value, what it means)
RESOURCES = {
    "cpus": (1, "CPU cores"),
    "memory_mb": (1, "memory in MiB"),
    "time_s": (1, "wall-clock time in seconds"),
    "gpus": (0, "GPUs"),
}


def resource_problem(value):
    """What is wrong with a task's ``resources``, or None."""
    if not isinstance(value, dict):
        return "must be a mapping, e.g. {\"cpus\": 2, \"memory_mb\": 4096}"
    unknown = sorted(set(value) - set(RESOURCES))
    if unknown:
        return f"unknown resource {', '.join(map(repr, unknown))}; known: {', '.join(RESOURCES)}"
    for name, amount in value.items():
        least, meaning = RESOURCES[name]
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < least:
            return f"'{name}' ({meaning}) must be a whole number of at least {least}, got {amount!r}"
    return None
