"""The Slurm executor: a shell step as a batch job on a Slurm cluster.

A run is staged into its working directory under the backend's
``root_path`` (on a real cluster, a file system the nodes share), rendered
exactly as the local shell executor renders it, and submitted with
``sbatch --parsable``; its handle is ``slurm:<job id>``. The batch script is
fixed text: the command line goes to a file beside it (``.command``) and the
script runs it with ``bash -c "$(cat .command)"``, so no value is ever part of
the script's own code. The script writes the step's stdout and stderr to
files in the directory, and its exit status to ``.exit_status`` (there is no
``sacct`` without slurmdbd, and Slurm forgets finished jobs after
``MinJobAge``).

The executor is detached and ``followed``: the worker thread returns once the
job is submitted, and this process's follower (``execution/follow.py``) polls
every job it follows with one ``squeue`` per interval (``poll_many``).
``sbatch``, ``squeue`` and ``scancel`` find the cluster as usual, through the
worker's environment (``SLURM_CONF``, ``SBATCH_*``).
"""
import dataclasses
import logging
import math
import os
import re
import shlex
import shutil
import subprocess

from django.conf import settings

from . import logs
from .executors import Executor, ExecutorError, Finished, Outcome, gather, read_control, register
from .processes import SHELL, _command, _sluice_env, _stage

log = logging.getLogger(__name__)

__all__ = ["SlurmExecutor", "batch_script", "elapsed_seconds", "finished_from", "sbatch_flags", "time_limit"]

# Files the batch script and the executor keep in the working directory (dot-files: never results).
COMMAND, SCRIPT, STARTED, ENDED, EXIT_STATUS = ".command", ".sluice.sbatch", ".started", ".ended", ".exit_status"
SLURM_OUT, SLURM_ERR, STDERR, STDOUT, CONTROL = ".slurm.out", ".slurm.err", ".stderr", ".stdout", ".control.jsonl"
# Seconds a Slurm command may take before the cluster counts as unreachable.
COMMAND_TIMEOUT = 60
# The worker's variables that tell the Slurm tools where the cluster is and what a site's defaults are.
_PASSED = re.compile(r"SLURM_CONF|SBATCH_[A-Z_]+|SQUEUE_[A-Z_]+|SCANCEL_[A-Z_]+")

# squeue's states (long names) in which a job has not ended yet.
ALIVE = {
    "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
    "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "POWER_UP_NODE", "UPDATE_DB",
}
# How an ended job's state reads in a node's message; {job} is the job id.
ENDED_BECAUSE = {
    "CANCELLED": "Slurm job {job} was cancelled (CANCELLED)",
    "TIMEOUT": "Slurm job {job} reached its time limit (TIMEOUT)",
    "OUT_OF_MEMORY": "Slurm job {job} ran out of memory (OUT_OF_MEMORY)",
    "NODE_FAIL": "Slurm job {job} ended because its node failed (NODE_FAIL)",
    "PREEMPTED": "Slurm job {job} was preempted by another job (PREEMPTED)",
    "BOOT_FAIL": "Slurm job {job} could not start: its node failed to boot (BOOT_FAIL)",
    "DEADLINE": "Slurm job {job} missed its deadline (DEADLINE)",
    "REVOKED": "Slurm job {job} was revoked by its federation (REVOKED)",
    "SPECIAL_EXIT": "Slurm job {job} ended with a special exit state (SPECIAL_EXIT)",
}


@dataclasses.dataclass(frozen=True)
class JobState:
    """One job as ``squeue`` reports it: its state (long name) and seconds run so far."""

    state: str
    elapsed: float = 0.0


# -- pure parts: flags, script, states ------------------------------------------------------------


def time_limit(resources, timeout):
    """The seconds a run may take: the smaller of the task's ``timeout`` and its ``time_s``, or None."""
    limits = [value for value in ((resources or {}).get("time_s"), timeout) if value]
    return min(limits) if limits else None


def sbatch_flags(resources, timeout, options):
    """The ``sbatch`` arguments for a task's ``resources`` and ``timeout`` and a backend's ``options``.

    Slurm counts time limits in whole minutes, so ``--time`` is rounded up;
    the follower stops a run at the exact second of its limit.
    """
    resources, options = resources or {}, options or {}
    flags = []
    if options.get("partition"):
        flags.append(f"--partition={options['partition']}")
    if options.get("account"):
        flags.append(f"--account={options['account']}")
    if resources.get("cpus"):
        flags.append(f"--cpus-per-task={resources['cpus']}")
    if resources.get("memory_mb"):
        flags.append(f"--mem={resources['memory_mb']}M")
    if resources.get("gpus"):
        flags.append(f"--gres=gpu:{resources['gpus']}")
    limit = time_limit(resources, timeout)
    if limit:
        flags.append(f"--time={math.ceil(limit / 60)}")
    return flags + list(options.get("sbatch_args") or [])


def batch_script(workdir, stdout_name, shell=SHELL):
    """The batch script of a run in ``workdir``: fixed text in which only quoted paths vary.

    It runs the command line of ``.command`` in ``workdir`` with its stdout in
    ``stdout_name`` and its stderr in ``.stderr``, and records its start, end
    and exit status in files, the status last (written whole, then renamed).
    """
    quote = shlex.quote
    return "\n".join([
        f"#!{shell}",
        "# Written by Sluice: one attempt of a step. The command line is in .command, never in this script.",
        f"cd -- {quote(str(workdir))} || exit 1",
        f"date +%s.%N > {STARTED}",
        f'{quote(shell)} -c "$(cat {COMMAND})" < /dev/null > {quote(stdout_name)} 2> {STDERR}',
        "status=$?",
        f"date +%s.%N > {ENDED}",
        f'echo "$status" > {EXIT_STATUS}.part && mv -f {EXIT_STATUS}.part {EXIT_STATUS}',
        "",
    ])


def elapsed_seconds(text):
    """Seconds from squeue's ``%M`` (``[days-][hours:]minutes:seconds``); 0 for anything else."""
    days, _, clock = text.strip().rpartition("-")
    try:
        seconds = 0
        for part in clock.split(":"):
            seconds = seconds * 60 + int(part)
        return float(int(days or 0) * 86400 + seconds)
    except ValueError:
        return 0.0


def finished_from(job_id, state, exit_code, resources=None, timed_out=False):
    """How a job ended, from its squeue ``state`` (None: squeue no longer knows it) and the status it wrote.

    Returns None while it runs. ``exit_code`` is what ``.exit_status`` holds
    (None without one); ``timed_out`` says that Sluice stopped it at its
    ``timeout``. A job squeue no longer knows that left no exit status is
    ``lost``: it ran nowhere anyone can tell.
    """
    resources = resources or {}
    if state in ALIVE:
        return None
    if timed_out:
        return Finished(exit_code, timed_out=True, reason=f"Sluice cancelled Slurm job {job_id} at the task's time limit")
    if state is None:
        if exit_code is None:
            return Finished(None, reason=f"Slurm job {job_id} is gone and left no exit status", lost=True)
        return Finished(exit_code)
    if state in ("COMPLETED", "FAILED"):
        if exit_code is None:
            return Finished(None, reason=f"Slurm job {job_id} ended {state} but left no exit status in its working directory "
                            "(is the backend's root_path on a file system the Slurm nodes share?)")
        return Finished(exit_code)
    reason = ENDED_BECAUSE.get(state, "Slurm job {job} ended " + state).format(job=job_id)
    if state == "OUT_OF_MEMORY":
        asked = resources.get("memory_mb")
        reason += f"; the task asks for memory_mb={asked}" if asked else "; the task asks for no memory_mb, so the partition's default applied"
    if state == "TIMEOUT":
        asked = resources.get("time_s")
        reason += f"; the task asks for time_s={asked}" if asked else ""
        return Finished(exit_code, timed_out=True, reason=reason)
    return Finished(exit_code, reason=reason)


# -- the executor -------------------------------------------------------------------------------


class SlurmExecutor(Executor):
    """Runs ``slurm`` steps (shell lines) as Slurm batch jobs, followed by this process's follower."""

    behaviour = "slurm"
    attached = False
    followed = True

    def start(self, run):
        """Stage and render the run, write its batch script and submit it; return ``slurm:<job id>``.

        ``run.extra`` holds the backend's ``options`` and the task's ``resources``.

        Raises:
            templating.TemplateError: the command line cannot be rendered safely.
            ExecutorError: sbatch is missing or refused the job (its message says why).
        """
        run.workdir.mkdir(parents=True, exist_ok=True)
        _stage(run)
        _, line = _command(dataclasses.replace(run, behaviour="localhost"))  # rendered exactly as a localhost step
        (run.workdir / COMMAND).write_text(line)
        stdout_name = f"{run.file_id}{run.stdout_ending}" if run.stdout_ending else STDOUT
        script = run.workdir / SCRIPT
        script.write_text(batch_script(run.workdir, stdout_name))
        argv = [
            _tool("sbatch"), "--parsable", f"--job-name=sluice-{run.file_id}", f"--chdir={run.workdir}",
            f"--output={run.workdir / SLURM_OUT}", f"--error={run.workdir / SLURM_ERR}", "--export=ALL", "--no-requeue",
            *sbatch_flags(run.resources, run.timeout, run.extra.get("options")), str(script),
        ]
        done = _call(argv, env=self._job_env(run))
        if done.returncode:
            raise ExecutorError(f"sbatch refused the job: {_first_words(done.stderr) or f'it exited with status {done.returncode}'}")
        job_id = done.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise ExecutorError(f"sbatch answered {done.stdout.strip()!r}, not a job id")
        return f"slurm:{job_id}"

    def poll(self, handle, workdir=None, resources=None):
        return self.poll_many({handle: workdir}, resources={handle: resources})[0][handle]

    def poll_many(self, workdirs, resources=None, timed_out=()):
        """How each run in ``workdirs`` (handle -> working directory) stands, with one ``squeue``.

        Returns ``(ended, elapsed)``: handle -> Finished (None while it runs),
        and handle -> seconds it has run. ``resources`` (handle -> the task's)
        go into the messages; ``timed_out`` names handles Sluice cancelled at
        their time limit.

        Raises:
            ExecutorError: squeue cannot reach the cluster.
        """
        states = self.states([_job_id(handle) for handle in workdirs])
        resources = resources or {}
        found, elapsed = {}, {}
        for handle, workdir in workdirs.items():
            job = states.get(_job_id(handle))
            state = job.state if job else None
            elapsed[handle] = job.elapsed if job else 0.0
            if state in ALIVE:
                found[handle] = None
                continue
            code = _exit_status(workdir) if workdir else None
            found[handle] = finished_from(_job_id(handle), state, code, resources.get(handle), timed_out=handle in timed_out)
        return found, elapsed

    def states(self, job_ids):
        """``squeue``'s view of ``job_ids``: job id -> JobState (a job it no longer knows is left out).

        Raises:
            ExecutorError: squeue cannot reach the cluster.
        """
        if not job_ids:
            return {}
        argv = [_tool("squeue"), "--noheader", "--states=all", "--format=%i|%T|%M", f"--jobs={','.join(sorted(set(job_ids), key=int))}"]
        done = _call(argv)
        if done.returncode:
            if "Invalid job id" in done.stderr:  # every one of them is gone (squeue says so for a single id)
                return {}
            raise ExecutorError(f"squeue failed: {_first_words(done.stderr) or f'it exited with status {done.returncode}'}")
        states = {}
        for row in done.stdout.splitlines():
            job_id, _, rest = row.strip().partition("|")
            state, _, elapsed = rest.partition("|")
            if job_id.isdigit():
                states[job_id] = JobState(state.split()[0] if state else "", elapsed_seconds(elapsed))
        return states

    def cancel(self, handle):
        """``scancel`` the job; harmless when it has ended already."""
        job_id = _job_id(handle)
        done = _call([_tool("scancel"), job_id])
        if done.returncode and "already completing or completed" not in done.stderr and "Invalid job id" not in done.stderr:
            log.warning("scancel %s failed: %s", job_id, done.stderr.strip())
            return False
        return True

    def collect(self, run, handle, finished):
        """The ended job's outcome, read from its working directory."""
        workdir = run.workdir
        _drop_links(workdir)  # what the server reads must be files the step wrote, not links it planted
        stdout = workdir / (f"{run.file_id}{run.stdout_ending}" if run.stdout_ending else STDOUT)
        stderr = workdir / STDERR
        tail = _tail(stderr)
        if finished.exit_code is None and not finished.timed_out:
            tail = "\n".join(text for text in (tail, _tail(workdir / SLURM_ERR)) if text)
        outputs, missing = gather(run, set(run.inputs))
        return Outcome(
            command=_read(workdir / COMMAND), exit_code=finished.exit_code, timed_out=finished.timed_out, duration=_duration(workdir),
            outputs=outputs, missing=missing, stderr_tail=tail, control=read_control(workdir / CONTROL),
            stdout_path=stdout if stdout.is_file() else None, stderr_path=stderr if stderr.is_file() else None, reason=finished.reason,
        )

    def reaches(self, handle):
        return (handle or "").startswith("slurm:") and _tool("squeue", required=False) is not None

    def time_limit(self, resources, timeout):
        """The seconds the follower lets a run take once it runs: the smaller of ``timeout`` and ``time_s``."""
        return time_limit(resources, timeout)

    def _job_env(self, run):
        """The job's environment (``sbatch --export=ALL`` passes sbatch's own): what a localhost step gets, and the cluster's variables."""
        inherited = {name: os.environ[name] for name in settings.SLUICE_STEP_ENV if name in os.environ}
        cluster = {name: value for name, value in os.environ.items() if _PASSED.fullmatch(name)}
        return {**inherited, **cluster, **run.environment, **_sluice_env(run), "SLUICE_CONTROL": str(run.workdir / CONTROL)}


def _tool(name, required=True):
    found = shutil.which(name)
    if found is None and required:
        raise ExecutorError(f"{name} is not on this worker's PATH: install the Slurm client tools (Debian: slurm-client) and set SLURM_CONF")
    return found


def _call(argv, env=None):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ExecutorError(f"{os.path.basename(argv[0])} did not answer within {COMMAND_TIMEOUT} s: is slurmctld reachable (SLURM_CONF)?") from None


def _job_id(handle):
    prefix, _, job_id = (handle or "").partition(":")
    if prefix != "slurm" or not job_id.isdigit():
        raise ExecutorError(f"{handle!r} is not a Slurm handle (slurm:<job id>)")
    return job_id


def _exit_status(workdir):
    text = _read(workdir / EXIT_STATUS).strip()
    return int(text) if text.lstrip("-").isdigit() else None


def _read(path):
    try:
        with open(path, "rb", opener=_no_follow) as handle:
            return handle.read(1024 * 1024).decode("utf-8", "replace")
    except OSError:
        return ""


def _no_follow(path, flags):
    return os.open(path, flags | os.O_NOFOLLOW)


def _tail(path):
    """The last whole lines, ``SLUICE_STDERR_TAIL`` bytes at most, of a file the step wrote."""
    try:
        with open(path, "rb", opener=_no_follow) as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - settings.SLUICE_STDERR_TAIL - 1))
            return logs.last_lines(handle.read(), settings.SLUICE_STDERR_TAIL) if size else ""
    except OSError:
        return ""


def _duration(workdir):
    try:
        return max(0.0, float(_read(workdir / ENDED)) - float(_read(workdir / STARTED)))
    except ValueError:
        return 0.0


def _drop_links(workdir):
    """Remove the top-level symbolic links a step left in its directory (as the local executor does)."""
    try:
        entries = list(os.scandir(workdir))
    except OSError:
        return
    for entry in entries:
        if entry.is_symlink():
            os.unlink(entry.path)


def _first_words(text, limit=500):
    return " ".join((text or "").split())[:limit]


register(SlurmExecutor())
