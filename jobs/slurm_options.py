"""The options of a backend whose queue type runs steps on Slurm.

A backend's ``options`` mapping names the partition and account its jobs go
to and extra ``sbatch`` arguments. They are checked when the backend is
saved, here in the catalogue (which knows nothing of how steps run), so that
a typo is a message on the form and not a failed step.
"""
__all__ = ["OPTIONS", "options_problem"]

# name -> what it must be, as said to the person who got it wrong
OPTIONS = {
    "partition": "a partition name (a string), e.g. \"short\"",
    "account": "an account name (a string), e.g. \"lab\"",
    "sbatch_args": "a list of sbatch arguments (strings), e.g. [\"--qos=normal\"]",
}


def options_problem(options):
    """What is wrong with a Slurm backend's ``options``, or None."""
    if not isinstance(options, dict):
        return 'must be a mapping, e.g. {"partition": "short", "account": "lab", "sbatch_args": ["--qos=normal"]}'
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        return f"unknown Slurm option {', '.join(map(repr, unknown))}; known: {', '.join(OPTIONS)}"
    for name in ("partition", "account"):
        value = options.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value)):
            return f"'{name}' must be {OPTIONS[name]}, got {value!r}"
    args = options.get("sbatch_args")
    if args is not None:
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            return f"'sbatch_args' must be {OPTIONS['sbatch_args']}, got {args!r}"
        loose = [arg for arg in args if not arg.startswith("-")]
        if loose:
            return f"'sbatch_args' holds options only (each starts with '-'; give a value as --name=value), got {loose[0]!r}"
    return None
