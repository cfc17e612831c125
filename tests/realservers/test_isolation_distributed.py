"""A hostile step run by a real `manage.py worker` on PostgreSQL and Redis learns none of the worker's secrets."""
import pytest

from tests.factories import make_job, make_task
from tests.realservers.test_distributed import finished, start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECRET = "worker-secret-5b1e9c"

# Each attack prints what it got, and "LEAK <what>" when it worked; the step itself always succeeds.
ATTACK = """\
for f in /proc/$PPID/environ /proc/*/environ; do tr '\\0' '\\n' < "$f" 2>/dev/null && echo "LEAK environ $f"; done;
ls -a ../.. && echo "LEAK listed the submissions";
cat {victim} && echo "LEAK read another submission's result";
echo owned > {media}/owned && echo "LEAK wrote into the media root";
kill -0 $PPID && echo "LEAK may signal the worker";
env | grep -i -e database_url -e broker_url -e secret_key && echo "LEAK its own environment";
echo done"""


def test_a_hostile_step_on_a_worker_learns_nothing_of_the_worker_or_other_submissions(processes, settings):
    processes.start("worker", "--processes", "1", "--threads", "2", env={"DJANGO_SECRET_KEY": SECRET})
    victim = finished(start(make_job("victim", steps=[make_task("victim", "echo victim-private-text", stdout_glob=".out")])))
    victim_file = victim.results.get().file.path
    attack = ATTACK.format(victim=victim_file, media=settings.MEDIA_ROOT)
    hostile = finished(start(make_job("hostile", steps=[make_task("hostile", attack, stdout_glob=".out")])))
    assert hostile.status == "complete", hostile.last_message
    output = hostile.results.get().file.read().decode()
    assert output.strip().endswith("done")
    assert "LEAK" not in output, output
    assert SECRET not in output and "victim-private-text" not in output and "postgres://" not in output
    assert not (settings.MEDIA_ROOT / "owned").exists()
