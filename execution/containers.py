"""The container executor: a step's shell line run inside its task's image by podman, docker or Apptainer.

A step of a ``container`` queue type is rendered exactly as a local shell
step (``processes.shell_line``, every submitted value quoted) and run as
``<shell> -c <line>`` in the task's ``image``. The runtime is
``SLUICE_CONTAINER_RUNTIME`` (a program and any global flags, shell-split;
its program's name picks the row of ``RUNTIMES``), with
``SLUICE_CONTAINER_ARGS`` and the task's ``container_options["args"]`` as
further flags of its ``run`` command. One code path renders all three
runtimes' command lines (``argv``); only the table differs.

What a step gets:

- its working directory, mounted at ``MOUNT`` (``/step``), which is its
  current directory, ``$TMP`` and ``SLUICE_TMP``; HOME and TMPDIR are a
  private ``/step/.tmp``. Nothing else of the host is mounted.
- no network (``--network=none``) unless ``container_options["network"]``.
- the environment a local step gets (its task's variables, the ``SLUICE_*``
  values, the locale names of ``SLUICE_STEP_ENV``), passed by name so that
  values never appear on a command line; the worker's own environment never.
  The image's PATH, HOME and user stand: a host's PATH means nothing inside it.
- ``resources`` as limits: ``cpus`` → ``--cpus``, ``memory_mb`` → ``--memory``,
  ``time_s`` → a timeout (the smaller of it and the task's); what a runtime
  cannot honour (GPUs on podman) is said at the top of the step's stderr log.
- a root server's step user (``SLUICE_STEP_USER``) as the container's user
  (podman and docker), so that even an escape from the container lands in an
  unprivileged account. Landlock, which confines local steps, is not applied:
  the runtime itself must reach its storage, and the container's mount
  namespace already limits the step to the image and its working directory.

The runtime's own configuration in the worker's environment
(``CONTAINERS_CONF``, ``DOCKER_HOST``, ``APPTAINER_*``…) reaches the runtime's
command, never the step. Sluice does not pull images: the image must be on
the worker (``podman pull``/``load`` it there first). Before each run the
image reference is resolved to its id, and the run uses that id, so the
digest recorded on the node (``Node.image_digest``) is that of the image the
step really ran in, even if the tag moves meanwhile.

A run's handle is ``<host>:<process group of the runtime's command>:<container name>``;
the name, ``sluice-<node id>-<attempt>-<random>``, lets a cancel, a timeout or
the reconciler stop the container itself (``stop``, then ``rm --force``), not
just the command that started it. The random part keeps two installations
that share a runtime from ever colliding. Apptainer has no names: its runs
stop with their process group.
"""
import hashlib
import logging
import os
import secrets
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from jobs.containers import DEFAULT_SHELL

from . import processes, sandbox
from .executors import Executor, ExecutorError, Finished, register

__all__ = ["MOUNT", "RUNTIMES", "ContainerExecutor", "ContainerSpec", "Runtime", "argv", "runtime_environment", "runtime_for"]

log = logging.getLogger(__name__)

# Where a step's working directory is mounted inside its container.
MOUNT = "/step"
# Names of SLUICE_STEP_ENV that describe the host rather than the step: inside an image its own values stand.
HOST_NAMES = frozenset({"PATH", "HOME", "SHELL", "USER", "LOGNAME", "TMPDIR"})
# What every runtime's command may need of the worker's environment (besides each runtime's own prefixes).
RUNTIME_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
    "XDG_DATA_HOME", "DBUS_SESSION_BUS_ADDRESS", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)
# Seconds one of the runtime's own commands (inspect, stop, rm) may take.
TOOL_TIMEOUT = 60


@dataclass(frozen=True)
class Runtime:
    """How one container runtime spells what Sluice asks of it (one row of ``RUNTIMES``)."""

    name: str
    run: tuple  # the run subcommand and the flags every run gets
    mount: str  # a bind mount, formatted with source= and target=
    workdir: str  # the current directory inside, formatted with path=
    no_network: tuple
    cpus: str  # formatted with n=
    memory: str  # formatted with mb=
    env_prefixes: tuple  # names of the worker's environment that configure this runtime
    name_flag: str = ""  # formatted with name=; "" when runs have no names (then they stop with their process group)
    labels: tuple = ()  # formatted with node= and attempt=
    user: str = ""  # formatted with uid= and gid=; "" when the runtime runs steps as the calling user
    gpus: str = ""  # formatted with n=; "" when Sluice cannot ask this runtime for GPUs
    read_only: tuple = ()
    env_prefix: str = ""  # "": step variables are named with --env NAME; else the runtime reads <prefix><NAME>
    inspect: tuple = ()  # argv after the program, formatted with image=: prints "<id> <digest>…" ; () for a file's hash
    stop: tuple = ()  # argv after the program, formatted with name=
    remove: tuple = ()
    exists: tuple = ()  # exits 0 while the container exists


RUNTIMES = {
    "podman": Runtime(
        name="podman",
        # passthrough: the step writes its own stdout and stderr files; podman keeps no copy of its logs.
        run=("run", "--rm", "--pull=never", "--log-driver=passthrough"),
        mount="--volume={source}:{target}", workdir="--workdir={path}", no_network=("--network=none",),
        cpus="--cpus={n}", memory="--memory={mb}m", env_prefixes=("CONTAINERS_", "CONTAINER_", "REGISTRY_AUTH_FILE", "STORAGE_"),
        name_flag="--name={name}", labels=("--label=sluice.node={node}", "--label=sluice.attempt={attempt}"), user="--user={uid}:{gid}",
        read_only=("--read-only",), inspect=("image", "inspect", "--format", "{{.Id}} {{.Digest}}", "{image}"),
        stop=("stop", "--time=1", "{name}"), remove=("rm", "--force", "--time=0", "{name}"), exists=("container", "exists", "{name}"),
    ),
    "docker": Runtime(
        name="docker",
        run=("run", "--rm", "--pull=never"),
        mount="--volume={source}:{target}", workdir="--workdir={path}", no_network=("--network=none",),
        cpus="--cpus={n}", memory="--memory={mb}m", env_prefixes=("DOCKER_",),
        name_flag="--name={name}", labels=("--label=sluice.node={node}", "--label=sluice.attempt={attempt}"), user="--user={uid}:{gid}",
        gpus="--gpus={n}", read_only=("--read-only",),
        inspect=("image", "inspect", "--format", "{{.Id}} {{range .RepoDigests}}{{.}} {{end}}", "{image}"),
        stop=("stop", "--timeout=1", "{name}"), remove=("rm", "--force", "{name}"), exists=("container", "inspect", "--format", "{{.Id}}", "{name}"),
    ),
    "apptainer": Runtime(
        name="apptainer",
        # --containall: private /tmp, /dev, PID and IPC namespaces, no home, and a clean environment.
        run=("exec", "--containall"),
        mount="--bind={source}:{target}", workdir="--pwd={path}", no_network=("--net", "--network=none"),
        cpus="--cpus={n}", memory="--memory={mb}M", env_prefixes=("APPTAINER_", "SINGULARITY_"), env_prefix="APPTAINERENV_",
    ),
}
RUNTIMES["singularity"] = RUNTIMES["apptainer"]


@dataclass
class ContainerSpec:
    """One step's container run, as plain data (what ``argv`` renders)."""

    runtime: list  # the program and its global flags
    image: str  # what to run: the resolved image id where the runtime has one
    line: str  # the step's shell line
    workdir: str  # on the host, mounted at MOUNT
    env_names: list = field(default_factory=list)  # step variables passed by name; their values are in the command's environment
    env_values: dict = field(default_factory=dict)  # step variables that must be given on the command line (see runtime_environment)
    name: str = ""
    node: object = ""
    attempt: object = ""
    network: bool = False
    cpus: int | None = None
    memory_mb: int | None = None
    gpus: int | None = None
    user: tuple | None = None  # (uid, gid)
    read_only: bool = False
    shell: str = DEFAULT_SHELL
    args: list = field(default_factory=list)  # SLUICE_CONTAINER_ARGS, then the task's own


def runtime_for(words):
    """The ``Runtime`` row for a runtime command (``["podman", "--runtime", "runc"]``), by its program's name.

    Raises:
        ExecutorError: the setting is empty or names a runtime Sluice does not know.
    """
    if not words:
        raise ExecutorError("SLUICE_CONTAINER_RUNTIME is empty; set it to podman, docker or apptainer")
    program = os.path.basename(words[0])
    try:
        return RUNTIMES[program]
    except KeyError:
        raise ExecutorError(f"SLUICE_CONTAINER_RUNTIME names {words[0]!r}; Sluice knows {', '.join(sorted(RUNTIMES))}") from None


def argv(spec):
    """The runtime's command line for ``spec`` (pure; every runtime's comes from this one function)."""
    runtime = runtime_for(spec.runtime)
    words = [*spec.runtime, *runtime.run]
    if runtime.name_flag and spec.name:
        words.append(runtime.name_flag.format(name=spec.name))
        words += [label.format(node=spec.node, attempt=spec.attempt) for label in runtime.labels]
    words += [runtime.mount.format(source=spec.workdir, target=MOUNT), runtime.workdir.format(path=MOUNT)]
    if not spec.network:
        words += runtime.no_network
    if spec.cpus:
        words.append(runtime.cpus.format(n=spec.cpus))
    if spec.memory_mb:
        words.append(runtime.memory.format(mb=spec.memory_mb))
    if spec.gpus and runtime.gpus:
        words.append(runtime.gpus.format(n=spec.gpus))
    if spec.user and runtime.user:
        words.append(runtime.user.format(uid=spec.user[0], gid=spec.user[1]))
    if spec.read_only:
        words += runtime.read_only
    if not runtime.env_prefix:  # the values come from the command's own environment: never on a command line
        words += [f"--env={name}" for name in spec.env_names]
        words += [f"--env={name}={value}" for name, value in spec.env_values.items()]
    words += spec.args
    return [*words, spec.image, spec.shell, "-c", spec.line]


def runtime_environment(runtime, step_env, worker_env):
    """Return (the runtime command's environment, names passed by name, {name: value} for the command line).

    The command gets what configures the runtime in ``worker_env`` (its own
    prefixes and the common names in ``RUNTIME_ENV``) and the step's
    variables; with ``--env NAME`` the runtime copies each into the container.
    A step variable whose name the runtime itself reads with another value
    (HOME, TMPDIR, say) must keep the runtime's value, or its absence, so it
    goes on the command line instead. Apptainer reads ``APPTAINERENV_<NAME>``, which never collides.
    """
    own = {name: value for name, value in worker_env.items() if _configures(runtime, name)}
    if runtime.env_prefix:
        return {**own, **{f"{runtime.env_prefix}{name}": value for name, value in step_env.items()}}, [], {}
    env, names, values = dict(own), [], {}
    for name, value in step_env.items():
        if _configures(runtime, name) and own.get(name) != value:
            values[name] = value
        else:
            env[name] = value
            names.append(name)
    return env, names, values


def _configures(runtime, name):
    """Is ``name`` a variable the runtime's command reads for itself?"""
    return name in RUNTIME_ENV or (name.startswith(runtime.env_prefixes) and not name.startswith(("APPTAINERENV_", "SINGULARITYENV_")))


class _Started:
    """A container run this worker started and has not collected yet."""

    __slots__ = ("process", "command", "started", "staged", "stdout", "stderr", "name", "runtime", "digest")

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)


class ContainerExecutor(Executor):
    """Runs ``container`` steps: a shell line inside the task's image (see the module docstring)."""

    behaviour = "container"
    attached = True

    def __init__(self):
        self._runs = {}
        self._lock = threading.Lock()

    def start(self, run):
        """Stage the inputs, resolve the image, start the runtime's command; return the run's handle.

        ``run.timeout`` becomes the smaller of the task's timeout and its ``time_s``.

        Raises:
            ExecutorError: no image, an unknown or missing runtime, or the image is not on this worker.
            templating.TemplateError: as for a local shell step.
        """
        words = shlex.split(settings.SLUICE_CONTAINER_RUNTIME)
        runtime = runtime_for(words)
        if not run.image:
            raise ExecutorError("the task names no container image; set its image (e.g. localhost/tools:1.2)")
        if ":" in str(run.workdir) or "," in str(run.workdir):
            raise ExecutorError(
                f"the working directory {run.workdir} cannot be mounted: its path has ':' or ','; choose another SLUICE_WORK_DIR or root path"
            )
        line = processes.shell_line(run, tmp=MOUNT)
        image, digest = _resolve(words, runtime, run.image)
        staged = _stage(run)
        resources = run.resources or {}
        limits = [limit for limit in (run.timeout, resources.get("time_s")) if limit]
        run.timeout = min(limits) if limits else None
        env, names, values = runtime_environment(runtime, _container_env(run), os.environ)
        spec = _spec(run, words, runtime, image, line, names, values)
        stdout, stderr = processes.open_streams(run)
        try:
            unmet = _unmet(runtime, resources)
            if unmet:
                stderr.write(f"sluice: {unmet}\n".encode())
                stderr.flush()
            process = subprocess.Popen(
                argv(spec), cwd=run.workdir, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True,
            )
        except FileNotFoundError as error:
            stdout.close()
            stderr.close()
            raise ExecutorError(f"cannot start the container runtime (SLUICE_CONTAINER_RUNTIME): {error}") from None
        except BaseException:
            stdout.close()
            stderr.close()
            raise
        handle = f"{processes.HOST}:{process.pid}:{spec.name}"
        started = _Started(
            process=process, command=line, started=time.monotonic(), staged=staged, stdout=stdout, stderr=stderr,
            name=spec.name, runtime=words, digest=digest,
        )
        with self._lock:
            self._runs[handle] = started
        return handle

    def wait(self, handle, timeout=None):
        started = self._run(handle)
        process = started.process
        try:
            return Finished(process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            self._stop(started.runtime, started.name, process.pid, process)
            return Finished(process.wait(), timed_out=True)
        finally:
            if process.returncode is None:  # an exception (e.g. KeyboardInterrupt) while waiting
                self._stop(started.runtime, started.name, process.pid, process)
                process.wait()

    def poll(self, handle):
        with self._lock:
            started = self._runs.get(handle)
        if started is not None:
            code = started.process.poll()
            return None if code is None else Finished(code)
        _, pid, name = _parts(handle)
        if (pid and processes.group_alive(pid)) or (name and _exists(shlex.split(settings.SLUICE_CONTAINER_RUNTIME), name)):
            return None
        return Finished(None, reason="its container is gone")

    def cancel(self, handle):
        """Stop the container (stop, then rm --force) and the runtime's command; nothing when it is on another host."""
        if not self.reaches(handle):
            return False
        with self._lock:
            started = self._runs.get(handle)
        _, pid, name = _parts(handle)
        words = started.runtime if started else shlex.split(settings.SLUICE_CONTAINER_RUNTIME)
        self._stop(words, name, pid, started.process if started else None)
        return True

    def collect(self, run, handle, finished):
        with self._lock:
            started = self._runs.pop(handle)
        outcome = processes.conclude(run, started, finished)
        outcome.image_digest = started.digest
        return outcome

    def reaches(self, handle):
        host, pid, _ = _parts(handle)
        return host == processes.HOST and pid is not None

    def _run(self, handle):
        with self._lock:
            return self._runs[handle]

    @staticmethod
    def _stop(words, name, pid, process=None):
        """Stop a run: its container by name (SIGTERM, SIGKILL a second later), then the runtime's command's group.

        The container goes first: the command alone (``podman run``) may die and
        leave its container running. The forced removal comes last, for a
        container that was being created while it was stopped.
        """
        runtime = runtime_for(words)
        if name and runtime.stop:
            _tool(words, runtime.stop, name=name)
        if pid:
            processes.kill_group(pid, reap=process.poll if process else None)
        if name and runtime.remove:
            _tool(words, runtime.remove, name=name)


def _stage(run):
    """Make the working directory with a private ``.tmp``, stage the inputs, hand both to the step user; return the staged names."""
    sandbox.prepare_workdir(run.workdir)
    (run.workdir / ".tmp").mkdir(mode=0o700, exist_ok=True)
    staged = processes._stage(run)
    sandbox.hand_over(run.workdir)
    return staged


def _spec(run, words, runtime, image, line, names, values):
    """The ``ContainerSpec`` of one run: its name, mount, limits, user, options and flags."""
    options = run.container_options or {}
    resources = run.resources or {}
    user = sandbox.current().user
    return ContainerSpec(
        runtime=words, image=image, line=line, workdir=str(run.workdir), env_names=names, env_values=values,
        name=f"sluice-{run.node_id}-{run.attempt}-{secrets.token_hex(3)}" if runtime.name_flag else "",
        node=run.node_id, attempt=run.attempt, network=bool(options.get("network")), cpus=resources.get("cpus"),
        memory_mb=resources.get("memory_mb"), gpus=resources.get("gpus"),
        user=(user.pw_uid, user.pw_gid) if user is not None and runtime.user else None,
        read_only=bool(options.get("read_only")), shell=options.get("shell") or DEFAULT_SHELL,
        args=[*shlex.split(settings.SLUICE_CONTAINER_ARGS), *options.get("args", [])],
    )


def _container_env(run):
    """The step's variables inside its container: a local step's, less the host's own names, with a private HOME."""
    env = processes.step_environment(run, tmp=MOUNT)
    for name in HOST_NAMES - set(run.environment):
        env.pop(name, None)
    private = f"{MOUNT}/.tmp"
    return {**env, **{name: private for name in ("HOME", "TMPDIR", "TMP", "TEMP") if name not in run.environment}}


def _unmet(runtime, resources):
    """A sentence for the step's log naming the resources this runtime cannot honour, or ""."""
    if resources.get("gpus") and not runtime.gpus:
        return f"resources: gpus={resources['gpus']} is not honoured by {runtime.name} (Sluice cannot ask it for GPUs); the step runs without them."
    return ""


def _parts(handle):
    """(host, process group or None, container name) of a handle."""
    host, _, rest = (handle or "").partition(":")
    pid, _, name = rest.partition(":")
    return host, int(pid) if pid.isdigit() else None, name


def _tool(words, template, **values):
    """Run one of the runtime's own commands (stop, rm, exists) for its exit status; never raises for the step's sake."""
    try:
        return subprocess.run(
            [*words, *_fill(template, **values)], env=runtime_environment(runtime_for(words), {}, os.environ)[0],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=TOOL_TIMEOUT,
        ).returncode
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("Could not run %s %s: %s.", words[0], template[0], error)
        return None


def _fill(template, **values):
    """A runtime command's words with ``{name}``/``{image}`` filled in (only those: Go templates keep their braces)."""
    words = []
    for part in template:
        for key, value in values.items():
            part = part.replace(f"{{{key}}}", str(value))
        words.append(part)
    return words


def _exists(words, name):
    runtime = runtime_for(words)
    return bool(runtime.exists) and _tool(words, runtime.exists, name=name) == 0


def _resolve(words, runtime, image):
    """Return (what to run, the digest to record) for ``image`` on this worker.

    podman and docker: the image's id, and its digest (its id when it has
    none, as an image built or imported locally). Apptainer: the image file
    itself, and the SHA-256 of its contents ("" for an image it fetches).

    Raises:
        ExecutorError: the runtime is missing, or the image is not on this worker.
    """
    if not runtime.inspect:
        path = Path(image)
        return image, f"sha256:{_file_digest(path)}" if path.is_file() else ""
    try:
        done = subprocess.run(
            [*words, *_fill(runtime.inspect, image=image)], env=runtime_environment(runtime, {}, os.environ)[0],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
        )
    except FileNotFoundError:
        raise ExecutorError(
            f"the container runtime {words[0]!r} (SLUICE_CONTAINER_RUNTIME) is not installed on this worker; install it or point the setting at it"
        ) from None
    except subprocess.TimeoutExpired:
        raise ExecutorError(f"{words[0]} took longer than {TOOL_TIMEOUT} s to inspect the image {image!r}") from None
    fields = done.stdout.split()
    if done.returncode != 0 or not fields:
        reason = (done.stderr.strip().splitlines() or ["no such image"])[-1]
        raise ExecutorError(
            f"container image {image!r} is not on this worker ({words[0]}: {reason}); Sluice does not pull images: "
            f"`{words[0]} pull {image}` (or load it) on every worker of this queue type"
        )
    identity, digests = fields[0], fields[1:]
    digest = digests[0].rpartition("@")[2] if digests else ""
    return identity, digest or (identity if identity.startswith("sha256:") else f"sha256:{identity}")


_digests = {}


def _file_digest(path):
    """The SHA-256 of an image file, remembered while its size and modification time stay the same."""
    info = path.stat()
    key = (str(path), info.st_size, info.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _digests[key] = digest.hexdigest()
    return _digests[key]


register(ContainerExecutor())
