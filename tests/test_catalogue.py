"""Jobs held in memory for submitting (jobs/catalogue.py) are never older than the catalogue."""
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from execution import engine, intake
from execution.errors import SubmissionInvalid
from jobs import catalogue
from jobs.models import CatalogueRevision, Job, Step
from tests.factories import make_backend, make_job, make_parameter, make_queue_type, make_task

pytestmark = pytest.mark.django_db


def test_a_job_looked_up_again_costs_one_statement_and_is_the_same_object():
    make_job("held", steps=[make_task("a")])
    first = engine.job_by_name("held")
    with CaptureQueriesContext(connection) as queries:
        again = engine.job_by_name("held")
        steps = again.steps_with_tasks()
    assert again is first and [step.key for step in steps] == ["a"]
    assert [query["sql"] for query in queries.captured_queries] == [
        f'SELECT token FROM {connection.ops.quote_name("jobs_cataloguerevision")} WHERE id = 1'
    ]


@pytest.mark.parametrize("change", ["step added", "parameter added", "step deleted", "job not runnable", "backend moved"])
def test_every_kind_of_catalogue_change_is_seen_by_the_next_submission(change):
    job = make_job("edited", steps=[make_task("a")])
    engine.submit(engine.job_by_name("edited"))  # now held
    if change == "step added":
        Step.objects.create(job=job, key="b", task=make_task("b"), ordering=1)
    elif change == "parameter added":
        make_parameter(job.steps.get().task, rest_alias="size", required=True)
    elif change == "step deleted":
        Step.objects.create(job=job, key="b", task=make_task("b"), ordering=1)
        engine.job_by_name("edited")
        job.steps.get(key="b").delete()
    elif change == "job not runnable":
        job.runnable = False
        job.save()
    elif change == "backend moved":
        backend = make_backend("elsewhere", make_queue_type("elsewhere"))
        task = job.steps.get().task
        task.backend = backend
        task.save()
    held = engine.job_by_name("edited")
    if change == "step added":
        assert [step.key for step in held.steps_with_tasks()] == ["a", "b"]
    elif change == "parameter added":
        with pytest.raises(SubmissionInvalid) as refused:
            engine.submit(held)
        assert "size" in str(refused.value.errors)
    elif change == "step deleted":
        assert [step.key for step in held.steps_with_tasks()] == ["a"]
    elif change == "job not runnable":
        with pytest.raises(SubmissionInvalid, match="runnable"):
            engine.submit(held)
    elif change == "backend moved":
        assert held.steps_with_tasks()[0].task.backend.name == "elsewhere"
        assert engine.submit(held).ready[0].queue == "elsewhere"


def test_a_change_without_signals_is_seen_once_changed_is_called():
    make_job("quiet", steps=[make_task("a")])
    assert engine.job_by_name("quiet").runnable
    Job.objects.filter(name="quiet").update(runnable=False)  # no signal: the held job stays
    assert engine.job_by_name("quiet").runnable
    catalogue.changed()
    assert not engine.job_by_name("quiet").runnable


def test_a_change_rolled_back_leaves_the_job_as_it_was():
    job = make_job("undone", steps=[make_task("a")])
    before = catalogue.revision()
    with pytest.raises(RuntimeError), transaction.atomic():
        Step.objects.create(job=job, key="b", task=make_task("b"), ordering=1)
        assert len(engine.job_by_name("undone").steps_with_tasks()) == 2  # held under the rolled-back revision
        raise RuntimeError("roll back")
    assert catalogue.revision() == before
    assert [step.key for step in engine.job_by_name("undone").steps_with_tasks()] == ["a"]


def test_without_its_row_nothing_is_held_until_a_change_writes_it_again():
    make_job("rowless", steps=[make_task("a")])
    CatalogueRevision.objects.all().delete()
    assert catalogue.revision() is None
    first = engine.job_by_name("rowless")
    assert engine.job_by_name("rowless") is not first  # loaded each time
    make_task("other")  # any change writes the row back
    assert catalogue.revision() is not None
    held = engine.job_by_name("rowless")
    assert engine.job_by_name("rowless") is held


def test_an_unknown_job_is_still_refused_by_name():
    with pytest.raises(SubmissionInvalid) as refused:
        intake.accept("missing", ip="127.0.0.1")
    assert refused.value.errors == {"job": ["there is no job 'missing'"]}
