"""A real container runtime for tests and benchmarks: podman, a test image made from busybox, a containers.conf.

No registry is reachable from CI, so the image is built here: a root file
system holding a static busybox and a link per applet (``sh``, ``ls``, ``ip``…),
imported with ``podman import``. The ``containers.conf`` written beside it is
what some hosts need (the runc runtime, low rlimits where the sandbox lacks
CAP_SYS_RESOURCE); it reaches podman through ``CONTAINERS_CONF``, as an
operator's would, which is how the tests prove that the executor honours the
runtime's own configuration.
"""
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

__all__ = ["CONTAINERS_CONF", "TEST_IMAGE", "build_image", "container_image", "podman", "remove_image", "write_containers_conf"]

# Tagged per process: parallel test processes (pytest-xdist) each build and remove their own.
TEST_IMAGE = f"localhost/sluice-test:{os.getpid()}"
CONTAINERS_CONF = """\
# For hosts whose sandbox lacks CAP_SYS_RESOURCE and uses hybrid cgroups (crun refuses them).
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
"""
BUSYBOX = "/bin/busybox"


def podman(*args, check=True, env=None):
    """Run podman with ``args``; return the completed process (text output)."""
    program = shutil.which("podman")
    if program is None:
        raise AssertionError("podman is not installed: apt-get install podman runc busybox-static (see .ci/run)")
    return subprocess.run([program, *args], capture_output=True, text=True, check=check, env=env, timeout=120)


def write_containers_conf(directory):
    """Write the containers.conf these hosts need into ``directory``; return its path."""
    if shutil.which("runc") is None and not os.path.exists("/usr/sbin/runc"):
        raise AssertionError("runc is not installed: apt-get install runc (podman needs it on this kind of host; see .ci/run)")
    path = Path(directory) / "containers.conf"
    path.write_text(CONTAINERS_CONF)
    return path


def build_image(directory, tag=TEST_IMAGE):
    """Build and import the busybox test image as ``tag``; return its id.

    Raises:
        AssertionError: busybox-static or podman is missing (CI installs both).
    """
    if not os.path.isfile(BUSYBOX):
        raise AssertionError(f"{BUSYBOX} is missing: apt-get install busybox-static (see .ci/run)")
    rootfs = Path(directory) / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    for empty in ("tmp", "proc", "sys", "dev", "etc"):
        (rootfs / empty).mkdir()
    (rootfs / "tmp").chmod(0o1777)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (rootfs / "bin" / applet).symlink_to("busybox")
    archive = Path(directory) / "image.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
    podman("import", "--change", "ENV=PATH=/bin", str(archive), tag)
    return podman("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


def remove_image(tag=TEST_IMAGE):
    """Remove the tag (and the image, when no other tag names it)."""
    podman("rmi", tag, check=False)


@pytest.fixture(scope="session")
def container_image():
    """The test image, built once per test run, with CONTAINERS_CONF set for the whole run; yields its tag."""
    directory = tempfile.mkdtemp(prefix="sluice-image-")
    before = os.environ.get("CONTAINERS_CONF")
    try:
        os.environ["CONTAINERS_CONF"] = str(write_containers_conf(directory))
        build_image(directory)
        yield TEST_IMAGE
    finally:
        remove_image()
        if before is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = before
        shutil.rmtree(directory, ignore_errors=True)
