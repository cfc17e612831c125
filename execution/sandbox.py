"""Confine a step's process: which user it runs as and which files it can reach.

Two mechanisms, combined when the host offers both (``SLUICE_SANDBOX=auto``):

- **user**: a server running as root starts steps as ``SLUICE_STEP_USER``, so a
  step cannot read the worker's ``/proc/<pid>/environ`` nor files only the
  server's user may read (the data directory, the database, the media root).
- **landlock**: the kernel's Landlock LSM limits the step to reading the system
  (``/usr``, ``/etc``…), the Python interpreter and ``SLUICE_SANDBOX_READ_PATHS``,
  and to writing its own working directory; it also keeps the step from
  ptracing or signalling processes outside its sandbox, whatever its user.

Both are applied to a short-lived thread that then spawns the step: Linux keeps
credentials and Landlock domains per thread, and a child inherits them from the
thread that forked it. This keeps Python's vfork spawn path, which
``Popen(user=...)`` and ``preexec_fn`` both give up (they cost a full fork of the
worker: +2 ms and +3 ms per step, against +0.3 ms here; see docs/operations.md).
The thread changes its credentials with raw system calls because glibc's
``setresuid()`` would change every thread of the process, and the thread ends
as soon as the step is started.

See docs/operations.md, "Threat model", for what each mechanism keeps out.
"""
import ctypes
import logging
import os
import platform
import pwd
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

__all__ = ["Plan", "SandboxUnavailable", "current", "hand_over", "plan_for", "prepare_workdir", "popen", "reclaim_workdir", "announce"]

log = logging.getLogger(__name__)

MODES = ("auto", "require", "off")
# Where ordinary programs (bash, coreutils, awk, python3, Rscript) find themselves and their data.
SYSTEM_READ_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
# Devices a step may open for reading and writing (``> /dev/null`` truncates, hence TRUNCATE).
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")

# Landlock (linux/landlock.h). The system call numbers are the same on every architecture.
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_ABI1 = (1 << 13) - 1  # EXECUTE … MAKE_SYM
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
PR_SET_NO_NEW_PRIVS = 38
# setgroups, setresgid, setresuid: these numbers differ between architectures.
SYS_CREDENTIALS = {"x86_64": (116, 119, 117), "aarch64": (159, 149, 147)}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class SandboxUnavailable(OSError):
    """Steps cannot be confined as settings require.

    An ``OSError`` so that the engine fails the node with this message, as it
    does for an unusable working directory or interpreter.
    """


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@dataclass(frozen=True)
class Plan:
    """How steps are confined on this host, and what is missing."""

    mode: str
    as_root: bool
    user: pwd.struct_passwd | None = None  # run steps as this user (root servers only)
    landlock: int = 0  # the Landlock ABI used, 0 for none
    read_paths: tuple = ()
    write_paths: tuple = ()  # besides the step's working directory (SLUICE_SANDBOX_WRITE_PATHS)
    gaps: tuple = field(default_factory=tuple)  # full sentences: what is not isolated and why

    @property
    def confines(self):
        return self.user is not None or self.landlock > 0

    @property
    def isolated(self):
        """True when a step cannot read the server's environment, database or other submissions' files.

        A root server needs the step user for that (Landlock alone leaves a step
        all of root's other powers); any other server needs Landlock.
        """
        return self.user is not None if self.as_root else self.landlock > 0

    def describe(self):
        parts = []
        if self.user is not None:
            parts.append(f"as user '{self.user.pw_name}' (uid {self.user.pw_uid})")
        if self.landlock:
            parts.append(f"under Landlock (ABI {self.landlock})")
        return "Steps run " + " ".join(parts) + "." if parts else "Steps run unconfined."

    def warning(self):
        """A full sentence for operators when steps are not (fully) isolated; "" when they are."""
        if self.mode == "off":
            return (
                "Steps are not isolated (SLUICE_SANDBOX=off): a step can read the server's environment "
                "(DJANGO_SECRET_KEY, DATABASE_URL), its database file and every submission's files."
            )
        if not self.gaps:
            return ""
        lead = "Steps are not isolated" if not self.isolated else "Steps are only partly isolated"
        return f"{lead}: " + " ".join(self.gaps)

    def step_env(self, workdir):
        """Environment values a confined step needs: a private HOME and TMPDIR, its own user name."""
        private = str(Path(workdir) / ".tmp")
        env = {"HOME": private, "TMPDIR": private, "TMP": private, "TEMP": private}
        if self.user is not None:
            env.update(USER=self.user.pw_name, LOGNAME=self.user.pw_name)
        return env


def landlock_abi():
    """Return the Landlock ABI version this kernel offers, 0 when it has none (or it is disabled)."""
    version = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def plan_for(mode, step_user, *, euid, abi, machine, python="", extra_read=(), extra_write=()):
    """Decide how steps are confined from plain facts about the host (pure, for tests too).

    ``python`` is the interpreter of Python steps: it must stay reachable and readable.

    Raises:
        ValueError: ``mode`` is not one of auto, require, off.
    """
    if mode not in MODES:
        raise ValueError(f"SLUICE_SANDBOX must be one of {', '.join(MODES)}, got {mode!r}")
    as_root = euid == 0
    if mode == "off":
        return Plan(mode, as_root)
    gaps, user = [], None
    if as_root:
        user, gap = _step_user(step_user, machine)
        gaps += [gap] if gap else []
    elif not abi:
        gaps.append(
            "the server does not run as root and the kernel offers no Landlock, so steps run as the server's own user "
            "with all its rights: run the server as root with SLUICE_STEP_USER, or on Linux 5.13 or later."
        )
    if not abi and as_root:
        gaps.append("the kernel offers no Landlock, so a step can read whatever its user may read (other submissions' working directories among them).")
    if user is not None and python:
        blocked = unreachable(os.path.realpath(python), user)
        if blocked:
            gaps.append(f"the step user '{user.pw_name}' cannot reach the Python interpreter {python} ({blocked} is not searchable by it), so Python steps will fail; set SLUICE_PYTHON.")
    interpreters = [python] if python else []
    reads = tuple(dict.fromkeys([*SYSTEM_READ_PATHS, *prefixes([*interpreters, *sys_prefixes()]), *extra_read]))
    return Plan(mode, as_root, user, abi, reads, tuple(dict.fromkeys(extra_write)), tuple(gaps))


def _step_user(name, machine):
    """Return (the step user's passwd entry or None, a sentence saying why it cannot be used or "")."""
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        return None, f"the step user '{name}' (SLUICE_STEP_USER) does not exist, so steps run as root; create it with `make setup` as root."
    if user.pw_uid == 0:
        return None, f"the step user '{name}' (SLUICE_STEP_USER) is root; name an unprivileged user."
    if machine not in SYS_CREDENTIALS:
        return None, f"switching steps to the user '{name}' is not supported on {machine}, so steps run as root."
    return user, ""


def current():
    """The plan for this process and the current settings (cached: it is consulted on every step)."""
    key = (
        settings.SLUICE_SANDBOX, settings.SLUICE_STEP_USER, tuple(map(str, settings.SLUICE_SANDBOX_READ_PATHS)),
        tuple(map(str, settings.SLUICE_SANDBOX_WRITE_PATHS)), _python(),
    )
    plan = _plans.get(key)
    if plan is None:
        plan = plan_for(
            settings.SLUICE_SANDBOX, settings.SLUICE_STEP_USER, euid=os.geteuid(), abi=landlock_abi(),
            machine=platform.machine(), python=key[4], extra_read=key[2], extra_write=key[3],
        )
        _plans[key] = plan
    return plan


_plans = {}


def announce(logger=log):
    """Log how steps are confined, loudly when they are not; return the plan.

    Raises:
        SandboxUnavailable: SLUICE_SANDBOX=require and steps cannot be isolated here.
    """
    plan = current()
    if plan.mode == "require" and not plan.isolated:
        raise SandboxUnavailable(refusal(plan))
    if plan.warning():
        logger.warning(plan.warning())
    else:
        logger.info(plan.describe())
    return plan


def refusal(plan):
    return "SLUICE_SANDBOX=require, but steps cannot be isolated on this host: " + " ".join(plan.gaps)


def prepare_workdir(workdir):
    """Create a step's working directory, writable by the step, its parents unlistable.

    The work root and the submission's directory become 0711 (when this
    server owns them) so that a step can pass through to its own directory
    but cannot list other submissions or nodes.

    Raises:
        SandboxUnavailable: the step user cannot reach the directory.
    """
    workdir = Path(workdir)
    plan = current()
    for tries_left in (2, 1, 0):
        try:
            workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
            break
        except FileNotFoundError:  # the last attempt of this submission removed its (empty) directory just now
            if not tries_left:
                raise
    if not plan.confines:
        return
    for directory in (workdir.parent.parent, workdir.parent):
        if directory.stat().st_uid == os.geteuid():
            os.chmod(directory, 0o711)
    private = workdir / ".tmp"
    private.mkdir(mode=0o700, exist_ok=True)
    if plan.user is not None:
        blocked = unreachable(workdir.parent, plan.user)
        if blocked:
            raise SandboxUnavailable(
                f"the step user '{plan.user.pw_name}' cannot reach the working directory {workdir}: "
                f"{blocked} is not searchable by it (make it searchable, chmod o+x, or set SLUICE_WORK_DIR elsewhere)"
            )
        for path in (workdir, private):
            os.chown(path, plan.user.pw_uid, plan.user.pw_gid)


def popen(argv, workdir, **options):
    """Start ``argv`` in ``workdir`` like ``subprocess.Popen(argv, cwd=workdir, **options)``, confined.

    Raises:
        SandboxUnavailable: SLUICE_SANDBOX=require and this host cannot isolate steps.
        OSError: as ``subprocess.Popen`` (e.g. the program is missing or not executable).
    """
    plan = current()
    if plan.mode == "require" and not plan.isolated:
        raise SandboxUnavailable(refusal(plan))
    if not plan.confines:
        return subprocess.Popen(argv, cwd=workdir, **options)
    options["env"] = {**options.get("env", os.environ), **plan.step_env(workdir)}
    if plan.user is not None:
        _hand_over(Path(workdir), plan.user)
    ruleset = _ruleset(plan, Path(workdir)) if plan.landlock else None
    try:
        return _spawn_on_thread(plan, ruleset, argv, workdir, options)
    finally:
        if ruleset is not None:
            os.close(ruleset)


def reclaim_workdir(workdir):
    """Take a finished step's working directory back before the server reads what it left.

    The directory becomes the server's (mode 0700) so that a process the step
    left behind cannot swap files any more, and top-level symbolic links are
    removed: the server must not read, as itself, a file the step could not.
    """
    plan = current()
    if not plan.confines:
        return
    workdir = Path(workdir)
    if plan.user is not None:
        os.chown(workdir, os.geteuid(), os.getegid())
        os.chmod(workdir, 0o700)
    for entry in os.scandir(workdir):
        if entry.is_symlink():
            os.unlink(entry.path)


def hand_over(workdir):
    """Give the step user the files staged in ``workdir`` for a step started other than by ``popen`` (in a container)."""
    plan = current()
    if plan.user is not None:
        _hand_over(Path(workdir), plan.user)


def unreachable(path, user):
    """Return the first directory on the way to ``path`` that ``user`` cannot search, or "" when none."""
    groups = {user.pw_gid}
    current_path = Path(os.path.abspath(path))
    for directory in [*reversed(current_path.parents), current_path]:
        try:
            info = directory.stat()
        except OSError:
            return ""  # not there yet: the part that exists was checked
        if not stat.S_ISDIR(info.st_mode):
            break
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return str(directory)
    return ""


def prefixes(interpreters):
    """Directories an interpreter reads: its installation prefix and, for a venv, the base one."""
    found = []
    for interpreter in interpreters:
        for candidate in {Path(interpreter), Path(os.path.realpath(interpreter))}:
            prefix = candidate.parent.parent if candidate.parent.name == "bin" else candidate.parent
            found.append(str(prefix))
            home = _venv_home(prefix)
            if home:
                found.append(str(Path(home).parent))
    return found


def sys_prefixes():
    return [os.path.join(prefix, "bin", "python") for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, sys.exec_prefix))]


def _python():
    return settings.SLUICE_PYTHON or sys.executable


def _venv_home(prefix):
    try:
        lines = (prefix / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        name, _, value = line.partition("=")
        if name.strip() == "home":
            return value.strip()
    return ""


def _hand_over(workdir, user):
    """Give the step the files staged for it, so it may change or replace them as before."""
    for entry in os.scandir(workdir):
        os.chown(entry.path, user.pw_uid, user.pw_gid, follow_symlinks=False)


def _handled(abi):
    fs = FS_ABI1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) | (FS_IOCTL_DEV if abi >= 5 else 0)
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    return fs, scoped


def _ruleset(plan, workdir):
    """Build a Landlock ruleset for one step; return its file descriptor."""
    fs, scoped = _handled(plan.landlock)
    attr = _RulesetAttr(fs, 0, scoped)
    # The kernel reads as much of the structure as the ABI knows (the net field came with ABI 4, scoped with 6).
    size = 24 if plan.landlock >= 6 else 16 if plan.landlock >= 4 else 8
    ruleset = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise SandboxUnavailable(ctypes.get_errno(), f"cannot create a Landlock ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        read = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
        device = (FS_READ_FILE | FS_WRITE_FILE) | (fs & (FS_TRUNCATE | FS_IOCTL_DEV))
        rules = [(path, read) for path in plan.read_paths] + [(path, device) for path in DEVICES] + [(path, fs) for path in (*plan.write_paths, str(workdir))]
        for path, access in rules:
            _allow(ruleset, path, access)
    except BaseException:
        os.close(ruleset)
        raise
    return ruleset


def _allow(ruleset, path, access):
    try:
        target = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path this host does not have (e.g. /lib32) needs no rule
    try:
        if not stat.S_ISDIR(os.fstat(target).st_mode):
            access &= FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # rights a file can have
        rule = _PathBeneathAttr(access, target)
        if _libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), ctypes.c_uint32(0)) < 0:
            errno = ctypes.get_errno()
            raise SandboxUnavailable(errno, f"cannot allow {path} in the Landlock ruleset: {os.strerror(errno)}")
    finally:
        os.close(target)


def _spawn_on_thread(plan, ruleset, argv, workdir, options):
    """Confine a new thread, start the step from it, and let the thread end."""
    outcome = {}

    def spawn():
        try:
            _confine_this_thread(plan, ruleset)
            outcome["process"] = subprocess.Popen(argv, cwd=workdir, **options)
        except BaseException as error:  # handed to the caller's thread, which re-raises it
            outcome["error"] = error

    thread = threading.Thread(target=spawn, name="sluice-step-spawn", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["process"]


def _confine_this_thread(plan, ruleset):
    """Drop this thread (only) into the step's Landlock domain and user; there is no way back."""
    # No setuid program (sudo, su) may lift a step out of its user or sandbox.
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        _raise("cannot set no_new_privs")
    if ruleset is not None and _libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
        _raise("cannot enter the Landlock sandbox")
    if plan.user is not None:
        setgroups, setresgid, setresuid = SYS_CREDENTIALS[platform.machine()]
        uid, gid = plan.user.pw_uid, plan.user.pw_gid
        if _libc.syscall(setgroups, 0, None) != 0:
            _raise("cannot clear supplementary groups")
        if _libc.syscall(setresgid, gid, gid, gid) != 0:
            _raise(f"cannot switch to group {gid}")
        if _libc.syscall(setresuid, uid, uid, uid) != 0:
            _raise(f"cannot switch to user '{plan.user.pw_name}'")


def _raise(what):
    errno = ctypes.get_errno()
    raise SandboxUnavailable(errno, f"{what}: {os.strerror(errno)}")
