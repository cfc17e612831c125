"""The local executors: a step as a process on the worker's host (shell lines, Python code, R code).

A run is staged into its working directory, rendered and started in a
session of its own, so its process group is its handle
(``<host>:<process group>``): a timeout, a cancel, a worker shutdown or the
reconciler on the same host stops the whole tree, never the worker. This is
the only module that signals processes.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings

from jobs import quoting, templating

from . import aa_compat, logs, sandbox
from .executors import Executor, Finished, Outcome, gather, read_control, register

__all__ = ["CONTROL_NAME", "KILL_GRACE", "LocalExecutor", "SHELL", "conclude", "group_alive", "kill_group", "open_streams", "shell_line", "step_environment"]

SHELL = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
# Seconds between SIGTERM and SIGKILL when a process group must stop.
KILL_GRACE = 1.0
HOST = socket.gethostname()
# The step's control channel, in its working directory.
CONTROL_NAME = ".control.jsonl"


class _Run:
    """A process this worker started and has not collected yet."""

    __slots__ = ("process", "command", "started", "staged", "stdout", "stderr")

    def __init__(self, process, command, started, staged, stdout, stderr):
        self.process, self.command, self.started, self.staged, self.stdout, self.stderr = process, command, started, staged, stdout, stderr


class LocalExecutor(Executor):
    """Runs ``localhost`` (shell), ``python`` and ``r`` steps as local processes."""

    attached = True

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self._runs = {}
        self._lock = threading.Lock()

    def start(self, run):
        """Stage, render and start the run; return ``<host>:<process group>``.

        Raises:
            templating.TemplateError: the executable names something undefined, or
                puts a value placeholder where its quoting does not hold (``jobs.quoting``).
            OSError: the working directory or interpreter is unusable.
        """
        sandbox.prepare_workdir(run.workdir)
        staged = _stage(run)
        argv, command = _command(run)
        env = step_environment(run)
        stdout, stderr = open_streams(run)
        try:
            process = sandbox.popen(argv, run.workdir, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True)
        except BaseException:
            stdout.close()
            stderr.close()
            raise
        handle = f"{HOST}:{process.pid}"
        with self._lock:
            self._runs[handle] = _Run(process, command, time.monotonic(), staged, stdout, stderr)
        return handle

    def wait(self, handle, timeout=None):
        run = self._run(handle)
        process = run.process
        try:
            return Finished(process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            kill_group(process.pid, reap=process.poll)
            return Finished(process.wait(), timed_out=True)
        finally:
            if process.returncode is None:  # an exception (e.g. KeyboardInterrupt) while waiting
                kill_group(process.pid, reap=process.poll)
                process.wait()

    def poll(self, handle):
        with self._lock:
            run = self._runs.get(handle)
        if run is not None:
            code = run.process.poll()
            return None if code is None else Finished(code)
        # Not ours (another worker on this host started it): alive while its group is.
        pid = _pid(handle)
        if pid and group_alive(pid):
            return None
        return Finished(None, reason="its process is gone")

    def cancel(self, handle):
        """Stop the run's process group (SIGTERM, then SIGKILL); nothing when it is on another host or gone."""
        if not self.reaches(handle):
            return False
        with self._lock:
            run = self._runs.get(handle)
        kill_group(_pid(handle), reap=run.process.poll if run else None)
        return True

    def collect(self, run, handle, finished):
        with self._lock:
            started = self._runs.pop(handle)
        return conclude(run, started, finished)

    def reaches(self, handle):
        host, _, pid = (handle or "").rpartition(":")
        return host == HOST and pid.isdigit()

    def _run(self, handle):
        with self._lock:
            return self._runs[handle]


def step_environment(run, tmp=None):
    """The whole environment a step gets: SLUICE_STEP_ENV from the worker, the task's own, SLUICE_* values.

    ``tmp`` is the working directory as the step sees it (a container mounts
    it elsewhere); nothing else of the worker's environment is passed.
    """
    tmp = tmp or str(run.workdir)
    inherited = {name: os.environ[name] for name in settings.SLUICE_STEP_ENV if name in os.environ}
    control = f"{tmp}/{CONTROL_NAME}"  # made by the step's first write, if any
    return {**inherited, **run.environment, **_sluice_env(run, tmp), "SLUICE_CONTROL": control}


def open_streams(run):
    """Open the step's stdout and stderr capture files in its working directory; return both handles.

    The server keeps its own handles on both files: what it reads back is what the step wrote
    there, even if the step replaces the names by links to files it could not read itself.
    """
    stdout_path = run.workdir / (f"{run.file_id}{run.stdout_ending}" if run.stdout_ending else ".stdout")
    stdout = open(stdout_path, "w+b")
    try:
        return stdout, open(run.workdir / ".stderr", "w+b")
    except BaseException:
        stdout.close()
        raise


def conclude(run, started, finished):
    """Take the working directory back from an ended step and return its ``Outcome``.

    ``started`` is what was kept of the run when it began (``command``,
    ``started``, ``staged``, ``stdout``, ``stderr``); its streams are closed here.
    """
    duration = time.monotonic() - started.started
    try:
        sandbox.reclaim_workdir(run.workdir)
        for stream in (started.stdout, started.stderr):
            _restore(stream)
        tail = _tail(started.stderr)
    finally:
        started.stdout.close()
        started.stderr.close()
    outputs, missing = gather(run, started.staged)
    return Outcome(
        command=started.command, exit_code=finished.exit_code, timed_out=finished.timed_out, duration=duration,
        outputs=outputs, missing=missing, stderr_tail=tail, control=read_control(run.workdir / CONTROL_NAME),
        stdout_path=Path(started.stdout.name), stderr_path=Path(started.stderr.name),
    )


def kill_group(pid, grace=KILL_GRACE, reap=None):
    """Stop the process group led by ``pid``: SIGTERM, then SIGKILL after ``grace`` seconds.

    ``reap`` (the leader's ``Popen.poll``) is called while waiting when this
    thread owns the leader: an unreaped leader is a zombie that keeps the group
    "alive" and would make every kill wait the whole grace period.
    """
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if reap:
            reap()
        if not group_alive(pid):
            return
        time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _restore(stream):
    """Make the name of a step's output file (``stream``, the server's open handle) name that file again.

    A step may delete or replace it (a link to the database, say); the
    server then writes what the step really wrote back under the name.
    """
    path = Path(stream.name)
    try:
        if os.lstat(path).st_ino == os.fstat(stream.fileno()).st_ino:
            return
        path.unlink()
    except FileNotFoundError:
        pass
    stream.seek(0)
    with open(path, "xb") as copy:
        shutil.copyfileobj(stream, copy)


def group_alive(pid):
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by someone else
        return True
    return True


def _pid(handle):
    _, _, pid = (handle or "").rpartition(":")
    return int(pid) if pid.isdigit() else None


def _stage(run):
    """Write every input into the working directory as <ID><ending>; return their names."""
    for name, write in run.inputs.items():
        write(run.workdir / name)
    return set(run.inputs)


def shell_line(run, tmp=None):
    """Render the run's executable as a shell line, every value quoted; ``tmp`` is ``$TMP`` (the working directory by default).

    Raises:
        templating.TemplateError: the executable names something undefined, or puts
            a value placeholder where its quoting does not hold.
    """
    _refuse_unsafe(run, "localhost")
    return templating.render(run.executable, _context(run, tmp), language="shell")


def _context(run, tmp=None):
    return templating.RenderContext(
        file_id=run.file_id,
        in_endings=run.in_endings,
        out_endings=run.out_endings,
        params=run.params,
        value=run.value,
        tmp=tmp or str(run.workdir),
        item=run.item,
        index=run.index,
        in_names=run.in_names,
    )


def _refuse_unsafe(run, behaviour):
    numbers = {f"$P{number}" for number, (_, value) in enumerate(run.params, start=1) if quoting.arithmetic_safe(value)}
    unsafe = quoting.problems(run.executable, behaviour, numbers | ({"$ITEM"} if quoting.arithmetic_safe(run.item) else set()))
    if unsafe:  # a task saved before saving checked this: never let a value run as a command
        raise templating.TemplateError(f"the executable is refused: {unsafe[0]}", None)


def _command(run):
    if run.behaviour == "localhost":
        line = shell_line(run)
        return [SHELL, "-c", line], line
    if run.compat == "aa" and run.behaviour in ("python", "r"):
        # A_A's I1.., O1.., P1.. variables, read from data files by a fixed prelude: no value is rendered into the code.
        aa_compat.write_variables(run)
        code = aa_compat.script(run)
    else:
        _refuse_unsafe(run, run.behaviour)
        code = templating.render(run.executable, _context(run), language="code")
    if run.behaviour == "python":
        script, interpreter = ".script.py", settings.SLUICE_PYTHON or sys.executable
    elif run.behaviour == "r":
        script, interpreter = ".script.R", settings.SLUICE_RSCRIPT
    else:
        raise ValueError(f"queue type behaviour {run.behaviour!r} cannot run a process")
    (run.workdir / script).write_text(code)
    return [interpreter, script], f"{interpreter} {script}"


def _sluice_env(run, tmp=None):
    """Values a task may read from its environment instead of placeholders (``tmp``: the working directory as the step sees it)."""
    env = {"SLUICE_ID": run.file_id, "SLUICE_TMP": tmp or str(run.workdir), "SLUICE_ITEM": templating.as_text(run.item), "SLUICE_INDEX": templating.as_text(run.index)}
    for number, ending in enumerate(run.in_endings, start=1):
        names = run.in_names[number - 1] if run.in_names else f"{run.file_id}{ending}"
        env[f"SLUICE_I{number}"] = " ".join(names) if isinstance(names, list) else names
    for number, ending in enumerate(run.out_endings, start=1):
        env[f"SLUICE_O{number}"] = f"{run.file_id}{ending}"
    for number, (_, value) in enumerate(run.params, start=1):
        env[f"SLUICE_P{number}"] = templating.as_text(value)
    return env


def _tail(handle):
    """The last whole lines, ``SLUICE_STDERR_TAIL`` bytes at most, the step wrote to ``handle`` (its stderr file)."""
    size = os.fstat(handle.fileno()).st_size
    if not size:
        return ""
    handle.seek(max(0, size - settings.SLUICE_STDERR_TAIL - 1))  # one byte more: does the tail start a line?
    return logs.last_lines(handle.read(), settings.SLUICE_STDERR_TAIL)


for _behaviour in ("localhost", "python", "r"):
    register(LocalExecutor(_behaviour))
