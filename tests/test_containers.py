"""The container executor: command lines for podman, docker and Apptainer, and steps run for real in podman.

The rendering tests run nothing. The others run a real podman with the
busybox test image of ``tests/containers_support.py`` (CONTAINERS_CONF set as
an operator would); each container run costs about half a second, so each
test here is one run that checks several things at once.
"""
import time

import pytest
from django.core.exceptions import ValidationError

from execution import containers, dispatch, engine, sandbox
from execution.containers import ContainerSpec, argv, runtime_environment, runtime_for
from execution.documents import submission_document
from execution.executors import ExecutorError, Finished, NodeRun
from execution.local import SynchronousRunner
from execution.models import NodeLog, Result
from jobs.containers import container_problems, options_problem
from tests.conftest import wait_for
from tests.containers_support import container_image, podman  # noqa: F401  (a fixture)
from tests.factories import make_backend, make_job, make_parameter, make_queue_type, make_task

LINE = "cat 1.txt | tr a-z A-Z > 1.out"


def spec(runtime, **fields):
    return ContainerSpec(runtime=runtime, image="sha256:abc", line=LINE, workdir="/srv/sluice/u/7-1", **fields)


# -- rendering (no runtime runs) -----------------------------------------------------------


def test_podman_gets_the_mount_no_network_limits_and_variables_by_name():
    words = argv(spec(["podman"], env_names=["SLUICE_ID", "TOKEN"], name="sluice-7-1-abc", node=7, attempt=1, cpus=2, memory_mb=512, user=(999, 995)))
    assert words == [
        "podman", "run", "--rm", "--pull=never", "--log-driver=passthrough", "--name=sluice-7-1-abc",
        "--label=sluice.node=7", "--label=sluice.attempt=1", "--volume=/srv/sluice/u/7-1:/step", "--workdir=/step", "--network=none",
        "--cpus=2", "--memory=512m", "--user=999:995", "--env=SLUICE_ID", "--env=TOKEN", "sha256:abc", "/bin/sh", "-c", LINE,
    ]


def test_docker_is_rendered_by_the_same_code_and_asks_for_gpus():
    words = argv(spec(
        ["/usr/bin/docker", "--context", "lab"], env_names=["SLUICE_ID"], name="n", cpus=1, memory_mb=64, gpus=1, network=True, args=["--shm-size=1g"],
    ))
    assert words == [
        "/usr/bin/docker", "--context", "lab", "run", "--rm", "--pull=never", "--name=n", "--label=sluice.node=", "--label=sluice.attempt=",
        "--volume=/srv/sluice/u/7-1:/step", "--workdir=/step", "--cpus=1", "--memory=64m", "--gpus=1", "--env=SLUICE_ID", "--shm-size=1g",
        "sha256:abc", "/bin/sh", "-c", LINE,
    ]


def test_apptainer_binds_the_directory_and_takes_variables_from_its_own_prefix():
    words = argv(spec(["apptainer"], env_names=[], cpus=2, memory_mb=100, user=(999, 995), shell="/bin/bash", read_only=True))
    assert words == [
        "apptainer", "exec", "--containall", "--bind=/srv/sluice/u/7-1:/step", "--pwd=/step", "--net", "--network=none",
        "--cpus=2", "--memory=100M", "sha256:abc", "/bin/bash", "-c", LINE,
    ]
    env, names, values = runtime_environment(runtime_for(["apptainer"]), {"SLUICE_ID": "x", "HOME": "/step/.tmp"}, {"HOME": "/root", "APPTAINERENV_LEAK": "1"})
    assert env == {"HOME": "/root", "APPTAINERENV_SLUICE_ID": "x", "APPTAINERENV_HOME": "/step/.tmp"}
    assert (names, values) == ([], {})


def test_the_runtime_gets_its_configuration_and_the_step_none_of_the_workers_secrets():
    worker = {"CONTAINERS_CONF": "/etc/c.conf", "HOME": "/root", "PATH": "/usr/bin", "DJANGO_SECRET_KEY": "s3cret", "DATABASE_URL": "postgres://x"}
    step = {"SLUICE_ID": "abc", "HOME": "/step/.tmp", "TOKEN": "t"}
    env, names, values = runtime_environment(runtime_for(["podman"]), step, worker)
    assert env == {"CONTAINERS_CONF": "/etc/c.conf", "HOME": "/root", "PATH": "/usr/bin", "SLUICE_ID": "abc", "TOKEN": "t"}
    assert names == ["SLUICE_ID", "TOKEN"]
    assert values == {"HOME": "/step/.tmp"}  # podman reads HOME itself: the step's goes on the command line
    assert "--env=HOME=/step/.tmp" in argv(spec(["podman"], env_names=names, env_values=values))


def test_runtime_commands_keep_their_go_templates_and_get_the_name():
    podman, docker = containers.RUNTIMES["podman"], containers.RUNTIMES["docker"]
    assert containers._fill(podman.inspect, image="localhost/x:1") == ["image", "inspect", "--format", "{{.Id}} {{.Digest}}", "localhost/x:1"]
    assert containers._fill(podman.stop, name="sluice-7-1-abc") == ["stop", "--time=1", "sluice-7-1-abc"]
    assert containers._fill(docker.stop, name="n") == ["stop", "--timeout=1", "n"]
    assert containers._fill(docker.remove, name="n") == ["rm", "--force", "n"]
    assert not containers.RUNTIMES["apptainer"].stop  # stopped with its process group


def test_an_unknown_runtime_is_named_in_the_error():
    with pytest.raises(ExecutorError, match="SLUICE_CONTAINER_RUNTIME names 'lxc'; Sluice knows apptainer, docker, podman, singularity"):
        runtime_for(["lxc"])


def test_container_options_are_checked():
    assert container_problems("localhost/tools:1.2", {"network": True, "args": ["--shm-size=1g"], "read_only": False, "shell": "/bin/bash"}) == {}
    assert container_problems("", {})["image"].startswith("a task of a container queue type needs an image")
    assert "not an image reference" in container_problems("--privileged", {})["image"]
    assert options_problem({"network": "yes"}) == "'network' (give the step the network (none by default)) must be true or false, got 'yes'"
    assert options_problem({"args": ["ok", "--x"]}) == "'args' entries must be flags (strings starting with '-'), got 'ok'"
    assert options_problem({"volumes": []}).startswith("unknown option 'volumes'; known: network, args")
    assert options_problem({"shell": "sh"}).startswith("'shell' must be an absolute path")


@pytest.mark.django_db
def test_a_container_task_without_an_image_is_refused_when_saved():
    task = make_task("boxed", "true", backend=container_backend())
    with pytest.raises(ValidationError) as raised:
        task.full_clean()
    assert "needs an image" in str(raised.value.message_dict["image"])
    task.image, task.container_options = "localhost/tools:1", {"network": 1}
    with pytest.raises(ValidationError) as raised:
        task.full_clean()
    assert "must be true or false" in str(raised.value.message_dict["container_options"])
    task.container_options, task.executable = {}, "echo '$P1'"  # a shell line: its quoting is checked as a local one's
    with pytest.raises(ValidationError) as raised:
        task.full_clean()
    assert "$P1 is inside single quotes" in str(raised.value.message_dict["executable"])


# -- real podman runs -----------------------------------------------------------------------


def container_backend():
    return make_backend("boxes", queue_type=make_queue_type("boxes", "container"))


def container_task(name, executable, image, **fields):
    return make_task(name, executable, backend=container_backend(), image=image, **fields)


def run(job, **kwargs):
    return SynchronousRunner(job, **kwargs).init().process()


def result_text(submission, ending):
    with Result.objects.get(submission=submission, ending=ending, superseded=False).file.open("rb") as handle:
        return handle.read().decode()


def containers_named(prefix):
    listed = podman("ps", "--all", "--format", "{{.Names}}").stdout.split()
    return [name for name in listed if name.startswith(prefix)]


@pytest.mark.django_db
def test_a_step_runs_in_the_image_on_its_staged_inputs_and_leaves_results(container_image):
    make = make_task("make", "printf 'abc\\n' > $O1", out_glob=".txt")
    boxed = container_task(
        "boxed", "pwd; echo $TMP; ls /bin/busybox; tr a-z A-Z < $I1 > $O1", container_image,
        in_glob=".txt", out_glob=".upper", stdout_glob=".seen",
    )
    submission = run(make_job(steps=[make, boxed]))
    node = submission.nodes.get(key="boxed")
    assert submission.status == "complete", node.message
    assert result_text(submission, ".upper") == "ABC\n"
    assert result_text(submission, ".seen").split() == ["/step", "/step", "/bin/busybox"]
    assert node.command == f"pwd; echo /step; ls /bin/busybox; tr a-z A-Z < {submission.file_id}.txt > {submission.file_id}.upper"
    expected = podman("image", "inspect", "--format", "{{.Digest}}", container_image).stdout.strip()
    assert expected.startswith("sha256:") and node.image_digest == expected
    assert submission_document(submission)["nodes"][1]["image_digest"] == expected


@pytest.mark.django_db
def test_a_step_has_no_network_and_none_of_the_workers_environment(container_image, monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "worker-secret-1234")
    monkeypatch.setenv("SLUICE_TEST_SECRET", "worker-secret-5678")
    task = container_task("look", "ls /sys/class/net; id -u; ulimit -n; env", container_image, stdout_glob=".txt")
    task.environment.create(name="GREETING", value="hello")
    submission = run(make_job(steps=[task]))
    assert submission.status == "complete", submission.nodes.get().message
    lines = result_text(submission, ".txt").splitlines()
    assert lines[0] == "lo"
    plan = sandbox.current()
    assert lines[1] == str(plan.user.pw_uid if plan.user else 0)
    assert lines[2] == "1024"  # the containers.conf named by the worker's CONTAINERS_CONF was honoured
    env = dict(line.split("=", 1) for line in lines[3:] if "=" in line)
    assert "worker-secret" not in "\n".join(lines)
    assert "CONTAINERS_CONF" not in env
    assert env["GREETING"] == "hello" and env["SLUICE_ID"] == submission.file_id and env["SLUICE_TMP"] == "/step"
    assert env["HOME"] == "/step/.tmp" and env["SLUICE_CONTROL"] == "/step/.control.jsonl"
    assert env["PATH"] == "/bin"  # the image's own, not the worker's


@pytest.mark.django_db
def test_a_task_that_asks_for_the_network_gets_it_and_its_limits_and_flags(container_image, settings):
    settings.SLUICE_CONTAINER_ARGS = "--hostname=from-settings"
    cgroup = (
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
        "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
    )
    task = container_task(
        "online", f"ls /sys/class/net | grep -vx lo | wc -l; {cgroup}; hostname; touch /marker 2>/dev/null || echo read-only; touch mine && echo writable",
        container_image, stdout_glob=".txt", container_options={"network": True, "read_only": True, "args": ["--shm-size=8m"]}, resources={"cpus": 1, "memory_mb": 64},
    )
    submission = run(make_job(steps=[task]))
    assert submission.status == "complete", submission.nodes.get().message
    interfaces, memory, cpu, hostname, image, work = result_text(submission, ".txt").split("\n")[:6]
    assert int(interfaces) >= 1
    assert (hostname, image, work) == ("from-settings", "read-only", "writable")  # SLUICE_CONTAINER_ARGS and read_only
    assert memory == str(64 * 1024 * 1024)
    assert cpu.split()[0] == "100000"  # one CPU: a quota of a whole period (100000 µs)


@pytest.mark.django_db
def test_a_failing_step_shows_its_exit_status_and_stderr(container_image):
    task = container_task("fails", "echo 'no such sample' >&2; exit 3", container_image)
    submission = run(make_job(steps=[task]))
    node = submission.nodes.get()
    assert (submission.status, node.status, node.exit_code) == ("error", "failed", 3)
    assert node.message == "exited with status 3\nno such sample"
    log = NodeLog.objects.get(node=node, stream="stderr")
    assert log.file.read().decode() == "no such sample\n"


@pytest.mark.django_db
def test_a_missing_image_fails_the_node_with_a_clear_message(container_image):
    task = container_task("nowhere", "true", "localhost/sluice-no-such-image:0")
    submission = run(make_job(steps=[task]))
    node = submission.nodes.get()
    assert node.status == "failed"
    assert node.message.startswith("container image 'localhost/sluice-no-such-image:0' is not on this worker (podman: ")
    assert "Sluice does not pull images: `podman pull localhost/sluice-no-such-image:0`" in node.message


@pytest.mark.django_db
def test_a_timeout_stops_the_container(container_image):
    task = container_task("slow", "sleep 30", container_image, timeout=30, resources={"time_s": 1})
    submission = run(make_job(steps=[task]))
    node = submission.nodes.get()
    assert node.status == "failed"
    assert node.message.startswith("timed out after 1 s")  # time_s, the smaller limit
    # Killing only `podman run` would leave the container sleeping: it must be gone as the run returns.
    assert containers_named(f"sluice-{node.pk}-") == []


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_the_container(container_image, worker):
    task = container_task("sleeper", "sleep 60", container_image)
    submission = engine.submit(make_job(steps=[task]))
    dispatch.send(submission.ready)
    deadline = time.monotonic() + 60
    node = submission.nodes.get()
    while time.monotonic() < deadline:
        node.refresh_from_db()
        if node.handle and containers_named(f"sluice-{node.pk}-"):
            break
        time.sleep(0.1)
    assert node.status == "running" and containers_named(f"sluice-{node.pk}-"), "the container never started"
    assert engine.cancel(submission.pk)
    submission = wait_for(submission)
    assert submission.status == "cancelled"
    while containers_named(f"sluice-{node.pk}-") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert containers_named(f"sluice-{node.pk}-") == []


@pytest.mark.django_db
def test_hostile_parameter_values_reach_the_container_only_as_data(container_image):
    task = container_task("echo", "printf '%s|' $P1 $P2 > $O1; echo $SLUICE_P1 >> $O1", container_image, out_glob=".out")
    make_parameter(task, "first")
    make_parameter(task, "second")
    values = {"echo_first": "$(id)", "echo_second": "; rm -rf / `id`"}
    submission = run(make_job(steps=[task]), params=values)
    assert submission.status == "complete", submission.nodes.get().message
    assert result_text(submission, ".out") == "$(id)|; rm -rf / `id`|$(id)\n"


def test_another_process_can_follow_and_stop_a_run_by_its_handle(container_image):
    """As the reconciler or a worker's shutdown does: by the handle alone, through a fresh executor."""
    from tests.conftest import searchable_dir

    run = NodeRun(
        behaviour="container", executable="sleep 60", workdir=searchable_dir("work-") / "s" / "5-1", file_id="f", in_endings=[], out_endings=[],
        node_id=5, attempt=1, image=container_image,
    )
    starter = containers.ContainerExecutor()
    handle = starter.start(run)
    try:
        name = handle.rsplit(":", 1)[1]
        deadline = time.monotonic() + 30
        while name not in containers_named(name) and time.monotonic() < deadline:
            time.sleep(0.1)
        other = containers.ContainerExecutor()
        assert other.reaches(handle) and other.poll(handle) is None
        assert other.cancel(handle)
        assert containers_named(name) == []
        assert starter.wait(handle).exit_code != 0  # the starter's command ended with its container (and is reaped)
        assert other.poll(handle) == Finished(None, reason="its container is gone")
        assert not other.reaches(handle.replace(handle.split(":")[0], "elsewhere", 1))
    finally:
        starter.cancel(handle)
        starter.collect(run, handle, starter.wait(handle))


def test_a_resource_the_runtime_cannot_honour_is_said():
    assert containers._unmet(runtime_for(["podman"]), {"gpus": 1}).startswith("resources: gpus=1 is not honoured by podman")
    assert containers._unmet(runtime_for(["docker"]), {"gpus": 1}) == ""
    assert containers._unmet(runtime_for(["podman"]), {"gpus": 0, "cpus": 2}) == ""


def test_the_executor_is_registered():
    from execution import executors

    assert isinstance(executors.get("container"), containers.ContainerExecutor)
