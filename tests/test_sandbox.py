"""How steps are confined: the decision (pure) and what a confined step can do (real processes)."""
import os
import pwd

import pytest
from django.contrib.auth import get_user_model

from execution import sandbox
from execution.local import SynchronousRunner
from execution.models import Result
from tests.factories import make_backend, make_job, make_queue_type, make_task

NOBODY = pwd.getpwnam("nobody").pw_name


def plan(mode="auto", user=NOBODY, euid=0, abi=7, machine="x86_64"):
    return sandbox.plan_for(mode, user, euid=euid, abi=abi, machine=machine)


def test_auto_as_root_with_landlock_switches_user_and_confines_files():
    chosen = plan()
    assert (chosen.user.pw_name, chosen.landlock, chosen.isolated, chosen.gaps) == (NOBODY, 7, True, ())
    assert chosen.warning() == ""
    assert "/usr" in chosen.read_paths


def test_auto_as_root_without_the_step_user_is_not_isolated_and_says_how_to_fix_it():
    chosen = plan(user="no-such-step-user")
    assert chosen.user is None and chosen.landlock == 7 and not chosen.isolated
    assert "the step user 'no-such-step-user' (SLUICE_STEP_USER) does not exist" in chosen.warning()
    assert "make setup" in chosen.warning()


def test_a_root_step_user_is_refused():
    chosen = plan(user="root")
    assert chosen.user is None and "is root" in chosen.warning()


def test_auto_without_root_uses_landlock_alone():
    chosen = plan(euid=1000)
    assert (chosen.user, chosen.landlock, chosen.isolated, chosen.gaps) == (None, 7, True, ())


def test_without_root_or_landlock_nothing_isolates_steps():
    chosen = plan(euid=1000, abi=0)
    assert not chosen.confines and not chosen.isolated
    assert chosen.warning().startswith("Steps are not isolated: the server does not run as root and the kernel offers no Landlock")


def test_root_without_landlock_is_isolated_by_the_user_alone_and_says_what_is_missing():
    chosen = plan(abi=0)
    assert chosen.isolated and chosen.landlock == 0
    assert chosen.warning().startswith("Steps are only partly isolated: the kernel offers no Landlock")


def test_off_confines_nothing_and_warns():
    chosen = plan(mode="off")
    assert not chosen.confines
    assert "Steps are not isolated (SLUICE_SANDBOX=off)" in chosen.warning()


def test_an_unknown_mode_is_an_error_naming_it():
    with pytest.raises(ValueError, match="SLUICE_SANDBOX must be one of auto, require, off, got 'maybe'"):
        plan(mode="maybe")


def test_this_host_offers_landlock():
    # The kernels these tests run on have Landlock (FACTS.md: ABI 7); without it the tests below prove less.
    assert sandbox.landlock_abi() >= 1


def run_step(executable, behaviour="localhost"):
    backend = make_backend(behaviour, queue_type=make_queue_type(behaviour, behaviour)) if behaviour != "localhost" else None
    task = make_task("t", executable, stdout_glob=".out", **({"backend": backend} if backend else {}))
    submission = SynchronousRunner(make_job(steps=[task])).init().process()
    node = submission.nodes.get()
    result = Result.objects.filter(node=node, ending=".out").first()
    return node, result.file.read().decode() if result else ""


@pytest.mark.django_db
def test_ordinary_tools_work_under_the_sandbox():
    assert sandbox.current().confines
    node, output = run_step("bash -c 'echo a' | awk '{print $1 \"b\"}' | sort; echo x > $TMPDIR/t && cat $TMPDIR/t; python3 -c 'print(1)'; Rscript -e 'cat(2, \"\\n\")'")
    assert node.status == "succeeded", node.message
    assert output.split() == ["ab", "x", "1", "2"]


@pytest.mark.django_db
def test_a_python_step_runs_under_the_sandbox():
    node, output = run_step("import sys\nprint('ran', sys.version_info[0])", behaviour="python")
    assert node.status == "succeeded", node.message
    assert output.strip() == "ran 3"


@pytest.fixture
def landlock_only(settings):
    """Landlock without a step user: what a server that does not run as root gets."""
    settings.SLUICE_STEP_USER = "no-such-step-user"
    settings.SLUICE_PYTHON = None  # the server's own interpreter: its prefix must be readable
    chosen = sandbox.current()
    assert chosen.user is None and chosen.landlock
    return chosen


@pytest.mark.django_db
def test_landlock_alone_keeps_a_step_from_the_workers_environment_and_files(landlock_only, monkeypatch, settings, tmp_path):
    monkeypatch.setenv("SLUICE_TEST_SECRET", "secret-value-4711")
    private = tmp_path / "private.txt"
    private.write_text("private-text")
    node, output = run_step(
        f"tr '\\0' '\\n' < /proc/$PPID/environ; cat {private}; cat {settings.MEDIA_ROOT}/x; echo owned > {tmp_path}/owned; kill -0 $PPID || echo no-signal; echo done"
    )
    assert node.status == "succeeded", node.message
    assert "secret-value-4711" not in output and "private-text" not in output
    assert output.split() == ["no-signal", "done"]
    assert not (tmp_path / "owned").exists()


@pytest.mark.django_db
def test_landlock_alone_lets_a_python_step_read_the_servers_interpreter(landlock_only):
    node, output = run_step("import django\nprint(django.__name__)", behaviour="python")
    assert node.status == "succeeded", node.message
    assert output.strip() == "django"


@pytest.mark.django_db
def test_a_symlink_left_by_a_step_is_not_read_by_the_server(settings, tmp_path):
    private = tmp_path / "private.txt"
    private.write_text("private-text")
    private.write_text('{"op": "output", "name": "leak", "value": "private-text"}\n')
    node, output = run_step(f"echo real; rm -f $SLUICE_ID.out; ln -s {private} $SLUICE_ID.out; ln -s {private} $SLUICE_CONTROL")
    # The stdout capture holds what the step wrote to its stdout, not the file its link pointed to.
    assert [result.file.read() for result in Result.objects.filter(node=node)] == [b"real\n"]
    node.refresh_from_db()
    assert node.outputs == {} and "private-text" not in node.message


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server switches users; CI runs as root")
@pytest.mark.django_db
def test_a_root_server_runs_steps_as_the_step_user():
    node, output = run_step("id -un")
    assert node.status == "succeeded", node.message
    assert output.strip() == sandbox.current().user.pw_name != "root"


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server switches users; CI runs as root")
@pytest.mark.django_db
def test_require_fails_the_step_with_a_clear_message_when_isolation_is_missing(settings):
    settings.SLUICE_SANDBOX, settings.SLUICE_STEP_USER = "require", "no-such-step-user"
    node, _ = run_step("echo should-not-run")
    assert node.status == "failed"
    assert node.message.startswith("SLUICE_SANDBOX=require, but steps cannot be isolated on this host: the step user 'no-such-step-user'")


@pytest.mark.django_db
def test_the_admin_index_warns_when_steps_are_not_isolated(client, staff, settings):
    client.force_login(staff)
    settings.SLUICE_SANDBOX = "off"
    assert "Steps are not isolated (SLUICE_SANDBOX=off)" in client.get("/admin/").content.decode()
    settings.SLUICE_SANDBOX = "auto"
    page = client.get("/admin/").content.decode()
    assert ('id="sandbox-warning"' in page) == bool(sandbox.current().warning())
