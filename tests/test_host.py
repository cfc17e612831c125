"""What `manage.py up` (and so `make demo`) says this host lacks."""
import pwd

from execution import host, sandbox


def unconfined():
    return sandbox.plan_for("auto", "sluice-step", euid=1000, abi=0, machine="x86_64")


def test_it_names_each_missing_part_what_it_costs_and_how_to_get_it(settings):
    settings.SLUICE_RSCRIPT = "Rscript"
    settings.SLUICE_CONTAINER_RUNTIME = "podman"
    missing = host.lacks(unconfined(), which=lambda program: None)
    assert [sentence.split(":")[0] for sentence in missing] == ["Step isolation", "R", "Slurm", "podman"]
    assert "none" in missing[0] and "make setup" in missing[0]
    assert "R tasks" in missing[1] and "apt-get install r-base-core" in missing[1]
    assert "steps of Slurm queue types" in missing[2] and "apt-get install slurm-client" in missing[2]
    assert "steps of container queue types fail" in missing[3] and "SLUICE_CONTAINER_RUNTIME" in missing[3]


def test_a_host_with_everything_lacks_nothing():
    plan = sandbox.plan_for("auto", "sluice-step", euid=1000, abi=7, machine="x86_64")
    assert plan.isolated and not plan.gaps
    assert host.lacks(plan, which=lambda program: f"/usr/bin/{program}") == []



def test_partial_isolation_points_at_the_warning_that_says_what_to_set():
    gap = "the step user 'sluice-step' cannot reach the Python interpreter /opt/py/bin/python, so Python steps will fail; set SLUICE_PYTHON."
    plan = sandbox.Plan("auto", as_root=True, user=pwd.getpwuid(0), landlock=7, gaps=(gap,))
    assert plan.isolated
    assert host.lacks(plan, which=lambda program: f"/usr/bin/{program}") == [
        "Step isolation: partial; the warning above says what is left open and what to set."
    ]
