"""What a container task may say about its image and how it runs: checked when the task is saved.

A task of a ``container`` queue type names an ``image`` and may set
``container_options``, a mapping of these keys:

- ``network`` (bool, default false): give the step the network. Without it a
  step's container has no network interface but loopback.
- ``args`` (list of strings): further flags for the runtime's ``run`` command,
  written by the administrator as they would be typed (``["--shm-size=1g"]``).
  Each must start with ``-``; they come before the image, so they can only be flags.
- ``read_only`` (bool, default false): mount the image's file system read-only;
  the step still writes its working directory.
- ``shell`` (absolute path, default ``/bin/sh``): the shell inside the image
  that runs the step's command line.

The executor (``execution/containers.py``) turns these into runtime flags.
"""
import re

__all__ = ["DEFAULT_SHELL", "OPTIONS", "container_problems", "options_problem"]

DEFAULT_SHELL = "/bin/sh"
# name -> (type, what it means)
OPTIONS = {
    "network": (bool, "give the step the network (none by default)"),
    "args": (list, "further flags for the runtime's run command, e.g. [\"--shm-size=1g\"]"),
    "read_only": (bool, "mount the image's file system read-only"),
    "shell": (str, f"the shell in the image that runs the command line (default {DEFAULT_SHELL})"),
}
# An image reference as runtimes take it: registry/name:tag@digest, or a local file for Apptainer.
IMAGE = re.compile(r"^[A-Za-z0-9./_:@+=-]+$")


def options_problem(options):
    """What is wrong with a task's ``container_options``, or None."""
    if not isinstance(options, dict):
        return "must be a mapping, e.g. {\"network\": true}"
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        return f"unknown option {', '.join(map(repr, unknown))}; known: {', '.join(OPTIONS)}"
    for name, value in options.items():
        kind, meaning = OPTIONS[name]
        if not isinstance(value, kind):
            wanted = {bool: "true or false", list: "a list of strings"}.get(kind, "a string")
            return f"'{name}' ({meaning}) must be {wanted}, got {value!r}"
    for arg in options.get("args", []):
        if not isinstance(arg, str) or not arg.startswith("-") or "\0" in arg:
            return f"'args' entries must be flags (strings starting with '-'), got {arg!r}"
    shell = options.get("shell")
    if shell is not None and (not shell.startswith("/") or any(character.isspace() for character in shell)):
        return f"'shell' must be an absolute path with no spaces, e.g. /bin/bash, got {shell!r}"
    return None


def container_problems(image, options):
    """What is wrong with a container task's image and options, as {field: message}; empty when nothing is."""
    problems = {}
    if not image:
        problems["image"] = "a task of a container queue type needs an image, e.g. localhost/tools:1.2"
    elif image.startswith("-") or not IMAGE.match(image):
        problems["image"] = (
            f"{image!r} is not an image reference: use letters, digits and ./_:@+=- (e.g. docker.io/library/debian:12), not starting with '-'"
        )
    problem = options_problem(options)
    if problem:
        problems["container_options"] = problem
    return problems
