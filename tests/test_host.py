"""What `manage.py up` (and so `make demo`) says this host lacks."""
from execution import host, sandbox


def unconfined():
    return sandbox.plan_for("auto", "sluice-step", euid=1000, abi=0, machine="x86_64")


def test_it_names_each_missing_part_what_it_costs_and_how_to_get_it(settings):
    settings.SLUICE_RSCRIPT = "Rscript"
    missing = host.lacks(unconfined(), which=lambda program: None)
    assert [sentence.split(":")[0] for sentence in missing] == ["Step isolation", "R", "Slurm", "podman"]
    assert "none" in missing[0] and "make setup" in missing[0]
    assert "R tasks" in missing[1] and "apt-get install r-base-core" in missing[1]
    assert all("not needed by any executor yet" in sentence for sentence in missing[2:])


def test_a_host_with_everything_lacks_nothing():
    plan = sandbox.plan_for("auto", "sluice-step", euid=1000, abi=7, machine="x86_64")
    assert plan.isolated and not plan.gaps
    assert host.lacks(plan, which=lambda program: f"/usr/bin/{program}") == []
