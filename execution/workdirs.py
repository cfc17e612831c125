"""Where attempts run, and removing those directories once nothing runs in them.

An attempt runs in ``<root>/<submission uuid>/<node id>-<attempt>``, the root
being its backend's ``root_path`` or SLUICE_WORK_DIR. The attempt's own end
removes its directory, and the submission's when that is left empty. What a
killed worker left behind is removed by ``sweep``: the reconciler runs it on
every pass, and a worker process once as it starts, each on its own host.
SLUICE_KEEP_WORK_DIRS keeps everything, for debugging tasks.
"""
import logging
import os
import re
import shutil
import stat
import time
from pathlib import Path

from django.conf import settings

__all__ = ["GRACE_SECONDS", "path_for", "remove", "roots", "sweep"]

log = logging.getLogger(__name__)

# A directory younger than this is left alone by the sweep: its attempt may
# have been claimed after the sweep read which attempts are running.
GRACE_SECONDS = 60.0
_ATTEMPT = re.compile(r"(\d+)-(\d+)")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def path_for(node):
    """The working directory of ``node``'s current attempt."""
    root = Path(node.task.backend.root_path or settings.SLUICE_WORK_DIR)
    return root / str(node.submission.uuid) / f"{node.pk}-{node.attempt}"


def remove(workdir):
    """Remove an attempt's directory, then its submission's if that is left empty.

    Whatever the step did to its files' modes (a directory it made
    unreadable) does not keep them: the server owns the tree again by now.
    """
    if settings.SLUICE_KEEP_WORK_DIRS:
        return
    workdir = Path(workdir)
    shutil.rmtree(workdir, onerror=_make_removable)
    if workdir.exists():
        log.warning("Could not remove the working directory %s entirely.", workdir)
    try:
        workdir.parent.rmdir()
    except OSError:  # another attempt of the submission still runs here, or it is gone already
        pass


def roots():
    """Every directory attempts may run under: SLUICE_WORK_DIR and the backends' root paths."""
    from jobs.models import Backend

    paths = {Path(settings.SLUICE_WORK_DIR)}
    paths.update(Path(root) for root in Backend.objects.exclude(root_path="").values_list("root_path", flat=True))
    return sorted(paths)


def sweep(now=None):
    """Remove attempt directories on this host that no running attempt owns; return how many.

    Only names Sluice makes are touched, and only ones older than
    GRACE_SECONDS. Empty submission directories go too.
    """
    from .models import Node
    from .states import NodeStatus

    if settings.SLUICE_KEEP_WORK_DIRS:
        return 0
    now = now if now is not None else time.time()
    running = set(Node.objects.filter(status=NodeStatus.RUNNING).values_list("pk", "attempt"))
    removed = 0
    for root in roots():
        for submission_dir in _children(root, _UUID):
            for attempt_dir in _children(submission_dir, _ATTEMPT):
                node_id, attempt = (int(part) for part in _ATTEMPT.fullmatch(attempt_dir.name).groups())
                if (node_id, attempt) not in running and _older(attempt_dir, now):
                    remove(attempt_dir)
                    removed += 1
            if _older(submission_dir, now):
                try:
                    submission_dir.rmdir()
                except OSError:  # not empty: an attempt still runs in it
                    pass
    if removed:
        log.info("Removed %s working directories that no running attempt owns.", removed)
    return removed


def _children(directory, pattern):
    try:
        entries = list(os.scandir(directory))
    except OSError:  # not there (yet), or not this host's
        return []
    return [Path(entry.path) for entry in entries if pattern.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)]


def _older(path, now):
    try:
        return now - path.stat(follow_symlinks=False).st_mtime > GRACE_SECONDS
    except OSError:
        return False


def _make_removable(function, path, exc_info):
    """rmtree's error hook: give the directory holding ``path`` back its owner's rights, and try again."""
    error = exc_info[1]
    if not isinstance(error, PermissionError):
        if not isinstance(error, FileNotFoundError):
            log.warning("Removing %s: %s", path, error)
        return
    try:
        parent = os.path.dirname(path)
        os.chmod(parent, stat.S_IRWXU)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, stat.S_IRWXU)
            shutil.rmtree(path, onerror=_make_removable)
        else:
            os.unlink(path)
    except OSError as again:
        log.warning("Removing %s: %s", path, again)
