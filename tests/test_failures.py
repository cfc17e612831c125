"""A step that goes wrong after its node was claimed ends failed, with the real cause, never left running.

Whatever breaks between the claim and the verdict (a value too long for its column, a full disk
while results are saved), the node must end ``failed`` with a message that names the cause,
and the submission ``error``: not ``crash``, and not left ``running`` for the reconciler to
re-run (and eventually give up on) as if its worker had died.
"""
import json
import os
import subprocess

import pytest

from execution import dispatch, engine
from execution.local import SynchronousRunner
from execution.states import NodeStatus
from tests.conftest import wait_for
from tests.factories import make_job, make_task

# How long a submission may take here before it counts as left running: the steps take milliseconds.
FINISH_WITHIN = 30


def styling_job(**style):
    """painter -> after, where painter styles the edge between them on its control channel."""
    operation = json.dumps({"op": "style", "from": "painter", "to": "after", **style})
    painter = make_task("painter", f"printf '%s\\n' '{operation}' >> \"$SLUICE_CONTROL\"")
    return make_job("styled", steps=[painter, make_task("after", "true")])


def filling_job(megabytes=1):
    return make_job("filling", steps=[make_task("filler", f"head -c {megabytes * 1024 * 1024} /dev/zero > $O1", out_glob=".big")])


def run_on_worker(job):
    submission = engine.submit(job)
    dispatch.start(submission)
    return wait_for(submission, timeout=FINISH_WITHIN)


def assert_failed_cleanly(submission, key, *words):
    node = submission.nodes.get(key=key)
    assert (submission.status, node.status) == ("error", "failed"), f"{submission.status}/{node.status}: {submission.last_message}"
    assert all(word in node.message for word in words), node.message
    assert not submission.nodes.filter(status__in=NodeStatus.ACTIVE).exists()


TOO_LONG = [
    pytest.param({"label": "L" * 200}, ("label", "128"), id="edge-label-over-128"),
    pytest.param({"color": "c" * 100}, ("color", "64"), id="edge-color-over-64"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("style, words", TOO_LONG)
def test_a_style_too_long_for_its_column_fails_the_step_naming_the_limit(style, words):
    submission = SynchronousRunner(styling_job(**style)).init().process()
    assert_failed_cleanly(submission, "painter", *words)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("style, words", TOO_LONG)
def test_a_style_too_long_for_its_column_fails_the_step_on_a_worker(worker, style, words):
    submission = run_on_worker(styling_job(**style))
    assert_failed_cleanly(submission, "painter", *words)


@pytest.fixture
def full_media_root(settings):
    """A media root on a 64 KiB tmpfs, so saving any bigger result runs out of space."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    root = settings.MEDIA_ROOT
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


@pytest.mark.django_db
def test_a_full_disk_while_saving_results_fails_the_step_with_the_cause(full_media_root):
    submission = SynchronousRunner(filling_job()).init().process()
    assert_failed_cleanly(submission, "filler", "No space left on device")


@pytest.mark.django_db(transaction=True)
def test_a_full_disk_while_saving_results_fails_the_step_on_a_worker(full_media_root, worker):
    submission = run_on_worker(filling_job())
    assert_failed_cleanly(submission, "filler", "No space left on device")
