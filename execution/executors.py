"""Run one node's process: stage inputs, render, execute, gather outputs.

Everything here works on a prepared ``Job`` description (``NodeRun``) and
the file system; the engine loads rows, calls ``execute`` and saves what it
returns. Processes run in their own session (process group) so a timeout
or a cancel kills the whole tree, never the worker.
"""
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from execution import sandbox
from jobs import templating

__all__ = ["NodeRun", "ProcessOutcome", "execute", "kill_group"]

SHELL = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
# A step's control-channel file larger than this is refused.
CONTROL_LIMIT = 4 * 1024 * 1024
# Seconds between SIGTERM and SIGKILL when a process group must stop.
KILL_GRACE = 1.0


@dataclass
class NodeRun:
    """Everything needed to run one attempt of one node, as plain data."""

    behaviour: str  # localhost | python | r
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


@dataclass
class ProcessOutcome:
    command: str
    exit_code: int | None
    timed_out: bool
    duration: float
    outputs: list  # [(ending, Path)]
    missing: list  # endings with no file
    stderr_tail: str
    control: str | None = ""  # what the step wrote to SLUICE_CONTROL; None when over CONTROL_LIMIT


def execute(run, on_start=None):
    """Run ``run`` to completion and return what happened.

    ``on_start(pid)`` is called once the process exists (the engine records
    it so that a cancel can find the process group).

    Raises:
        templating.TemplateError: the executable names something undefined.
        OSError: the working directory or interpreter is unusable.
    """
    sandbox.prepare_workdir(run.workdir)
    staged = _stage(run)
    argv, command = _command(run)
    stdout_name = f"{run.file_id}{run.stdout_ending}" if run.stdout_ending else ".stdout"
    inherited = {name: os.environ[name] for name in settings.SLUICE_STEP_ENV if name in os.environ}
    control = run.workdir / ".control.jsonl"  # made by the step's first write, if any
    env = {**inherited, **run.environment, **_sluice_env(run), "SLUICE_CONTROL": str(control)}
    started = time.monotonic()
    with open(run.workdir / stdout_name, "wb") as stdout, open(run.workdir / ".stderr", "w+b") as stderr:
        process = sandbox.popen(argv, run.workdir, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True)
        if on_start:
            on_start(process.pid)
        timed_out = False
        try:
            exit_code = process.wait(timeout=run.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_group(process.pid, reap=process.poll)
            exit_code = process.wait()
        finally:
            if process.returncode is None:  # an exception (e.g. KeyboardInterrupt) while waiting
                kill_group(process.pid, reap=process.poll)
                process.wait()
        duration = time.monotonic() - started
        stderr_tail = _tail(stderr)
    sandbox.reclaim_workdir(run.workdir)
    outputs, missing = _gather(run, staged)
    return ProcessOutcome(command, exit_code, timed_out, duration, outputs, missing, stderr_tail, _control(control))


def kill_group(pid, grace=KILL_GRACE, reap=None):
    """Stop the process group led by ``pid``: SIGTERM, then SIGKILL after ``grace`` seconds.

    ``reap`` (the leader's ``Popen.poll``) is called while waiting when this
    thread owns the leader: an unreaped leader is a zombie that keeps the group
    "alive" and would make every kill wait the whole grace period.
    """
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if reap:
            reap()
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _stage(run):
    """Write every input into the working directory as <ID><ending>; return their names."""
    for name, write in run.inputs.items():
        write(run.workdir / name)
    return set(run.inputs)


def _command(run):
    context = templating.RenderContext(
        file_id=run.file_id,
        in_endings=run.in_endings,
        out_endings=run.out_endings,
        params=run.params,
        value=run.value,
        tmp=str(run.workdir),
        item=run.item,
        index=run.index,
        in_names=run.in_names,
    )
    if run.behaviour == "localhost":
        line = templating.render(run.executable, context, language="shell")
        return [SHELL, "-c", line], line
    code = templating.render(run.executable, context, language="code")
    if run.behaviour == "python":
        script, interpreter = ".script.py", settings.SLUICE_PYTHON or sys.executable
    elif run.behaviour == "r":
        script, interpreter = ".script.R", settings.SLUICE_RSCRIPT
    else:
        raise ValueError(f"queue type behaviour {run.behaviour!r} cannot run a process")
    (run.workdir / script).write_text(code)
    return [interpreter, script], f"{interpreter} {script}"


def _sluice_env(run):
    """Values a task may read from its environment instead of placeholders."""
    env = {"SLUICE_ID": run.file_id, "SLUICE_TMP": str(run.workdir), "SLUICE_ITEM": templating.as_text(run.item), "SLUICE_INDEX": templating.as_text(run.index)}
    for number, ending in enumerate(run.in_endings, start=1):
        names = run.in_names[number - 1] if run.in_names else f"{run.file_id}{ending}"
        env[f"SLUICE_I{number}"] = " ".join(names) if isinstance(names, list) else names
    for number, ending in enumerate(run.out_endings, start=1):
        env[f"SLUICE_O{number}"] = f"{run.file_id}{ending}"
    for number, (_, value) in enumerate(run.params, start=1):
        env[f"SLUICE_P{number}"] = templating.as_text(value)
    return env


def _gather(run, staged):
    """Return ([(ending, path)], [missing endings]) for the out-globs and stdout."""
    endings = list(run.out_endings)
    if run.stdout_ending and run.stdout_ending not in endings:
        endings.append(run.stdout_ending)
    files = sorted(path for path in run.workdir.iterdir() if path.is_file() and not path.name.startswith(".") and path.name not in staged)
    # A file belongs to the longest ending it has, so ".gz.txt" is not taken by ".txt".
    by_ending = {ending: [] for ending in endings}
    for path in files:
        matching = [ending for ending in endings if path.name.endswith(ending)]
        if matching:
            by_ending[max(matching, key=len)].append(path)
    outputs = [(ending, path) for ending in endings for path in by_ending[ending]]
    missing = [ending for ending in endings if not by_ending[ending] and ending != run.stdout_ending]
    return outputs, missing


def _tail(handle):
    """The last ``SLUICE_STDERR_TAIL`` bytes the step wrote to ``handle`` (its stderr file)."""
    size = os.fstat(handle.fileno()).st_size
    if not size:
        return ""
    handle.seek(max(0, size - settings.SLUICE_STDERR_TAIL))
    return handle.read().decode("utf-8", "replace").strip()


def _control(path):
    """What the step wrote to its control channel: "" for nothing, None when over CONTROL_LIMIT."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ""
    return path.read_text(errors="replace") if size <= CONTROL_LIMIT else None

