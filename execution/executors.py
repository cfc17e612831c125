"""Executors: how an attempt of a node runs, keyed by its queue type's execution behaviour.

The engine prepares a plain description of the attempt (``NodeRun``), asks
the executor for its behaviour to ``start`` it and keeps the opaque handle
that comes back on the node, so that a cancel, a timeout, a worker shutdown
or the reconciler — in any process, on any host that can reach the run — can
act on it through the same executor:

- ``start(run) -> handle``: start the run and return at once (a string that
  names the run to this executor: a process group, a Slurm job id, a child
  submission).
- ``wait(handle, timeout) -> Finished``: block until it ends (only for
  ``attached`` executors, whose runs live inside the worker's process tree).
- ``poll(handle) -> Finished | None``: has it ended? None while it runs. A
  detached executor's runs are followed this way, a few at a time, from a
  thread that holds none of them, so hundreds can be in flight per worker.
- ``cancel(handle)``: stop it; harmless when it has ended already.
- ``collect(run, handle, finished) -> Outcome``: its output files, logs and
  control-channel text, once it has ended.

Register an executor with ``register``; the built-in ones (``processes``,
``subjobs``) register when the app is ready. ``docs/architecture.md`` walks
through adding one.
"""
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Executor", "ExecutorError", "Finished", "NodeRun", "Outcome", "execute", "gather", "get", "read_control", "register", "registered"]

# A step's control-channel file larger than this is refused.
CONTROL_LIMIT = 4 * 1024 * 1024


class ExecutorError(RuntimeError):
    """A run could not be started or reached; the message says why."""


@dataclass
class NodeRun:
    """Everything needed to run one attempt of one node, as plain data."""

    behaviour: str  # the queue type's execution behaviour: localhost | python | r | job | ...
    executable: str
    workdir: Path
    file_id: str
    in_endings: list
    out_endings: list
    stdout_ending: str = ""
    params: list = field(default_factory=list)  # [(ParamSpec, value)]
    value: str = ""
    environment: dict = field(default_factory=dict)
    timeout: int | None = None
    inputs: dict = field(default_factory=dict)  # file name -> callable(dest_path) that writes the file
    in_names: list = None  # per in-glob ending: the staged name, or a list of names for a "*" ending
    item: object = ""
    index: object = ""
    extra: dict = field(default_factory=dict)  # what a particular executor needs besides (a sub-job's child job...)
    node_id: int | None = None  # with ``attempt``, names the run to outside systems (a container's name)
    attempt: int = 0
    resources: dict = field(default_factory=dict)  # the task's cpus, memory_mb, time_s, gpus (jobs/resources.py)
    image: str = ""  # a container task's image and options (jobs/containers.py)
    container_options: dict = field(default_factory=dict)
    compat: str = ""  # the job's run-time semantics: "" (Sluice) or "aa" (Analytics Automated, execution/aa_compat.py)


@dataclass
class Finished:
    """How a run ended: its exit status (None when there is none), and whether its time ran out."""

    exit_code: int | None
    timed_out: bool = False
    reason: str = ""  # set when the run ended without a status of its own (lost, killed by the scheduler...)
    lost: bool = False  # the run is gone and nobody can tell how it ended (a cluster job that left no exit status)


@dataclass
class Outcome:
    """What a finished run left: the command as run, its verdict inputs, files and logs."""

    command: str
    exit_code: int | None
    timed_out: bool
    duration: float
    outputs: list  # [(ending, Path)]
    missing: list  # out endings with no file
    stderr_tail: str
    control: str | None = ""  # what the step wrote to SLUICE_CONTROL; None when over CONTROL_LIMIT
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    image_digest: str = ""  # the container image the run used, for provenance
    reason: str = ""  # why the run ended as it did, in the scheduler's words (out of memory, preempted...)


class Executor:
    """Base class of executors; see the module docstring for the contract."""

    behaviour = ""
    attached = True  # runs live in the worker's process tree: the worker thread waits for them
    # A detached executor whose runs are processes elsewhere (a cluster job): its node stays running,
    # and the process's follower (execution/follow.py) polls it and concludes it as an attached run.
    followed = False

    def start(self, run):
        raise NotImplementedError

    def wait(self, handle, timeout=None):
        raise NotImplementedError(f"the {self.behaviour} executor's runs are followed with poll(), not waited for")

    def poll(self, handle):
        raise NotImplementedError

    def cancel(self, handle):
        raise NotImplementedError

    def collect(self, run, handle, finished):
        raise NotImplementedError

    def reaches(self, handle):
        """Can this process act on ``handle`` (cancel it, poll it)? A local process group can only be reached on its host."""
        return True

    def time_limit(self, resources, timeout):
        """Seconds a ``followed`` run may run before its follower cancels it (None: no limit)."""
        return timeout


_registry = {}


def register(executor):
    """Make ``executor`` run the attempts of queue types with its ``behaviour``; return it."""
    _registry[executor.behaviour] = executor
    return executor


def get(behaviour):
    """The executor for ``behaviour``.

    Raises:
        ExecutorError: no executor runs that behaviour.
    """
    try:
        return _registry[behaviour]
    except KeyError:
        raise ExecutorError(f"no executor runs queue types with execution behaviour {behaviour!r}; known: {', '.join(sorted(_registry))}") from None


def registered():
    """Every registered executor by behaviour (the built-in ones register when the app is ready)."""
    return dict(_registry)


def execute(run, on_start=None):
    """Run ``run`` on its behaviour's attached executor to the end and return its ``Outcome``.

    ``on_start(handle)`` is called once the run exists. For code (benchmarks,
    tests) that runs one attempt without the engine.
    """
    executor = get(run.behaviour)
    handle = executor.start(run)
    if on_start:
        on_start(handle)
    try:
        finished = executor.wait(handle, run.timeout)
    except BaseException:
        executor.cancel(handle)
        raise
    return executor.collect(run, handle, finished)


def read_control(path):
    """What a step wrote to its control channel: "" for nothing, None when over CONTROL_LIMIT."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ""
    return path.read_text(errors="replace") if size <= CONTROL_LIMIT else None


def gather(run, staged, directory=None):
    """Return ([(ending, path)], [missing endings]) for the out-globs and stdout found in the run's directory."""
    directory = directory or run.workdir
    endings = list(run.out_endings)
    if run.stdout_ending and run.stdout_ending not in endings:
        endings.append(run.stdout_ending)
    files = sorted(path for path in directory.iterdir() if path.is_file() and not path.name.startswith(".") and path.name not in staged)
    # A file belongs to the longest ending it has, so ".gz.txt" is not taken by ".txt".
    by_ending = {ending: [] for ending in endings}
    for path in files:
        matching = [ending for ending in endings if path.name.endswith(ending)]
        if matching:
            by_ending[max(matching, key=len)].append(path)
    outputs = [(ending, path) for ending in endings for path in by_ending[ending]]
    missing = [ending for ending in endings if not by_ending[ending] and ending != run.stdout_ending]
    return outputs, missing
