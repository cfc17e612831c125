"""What the API says about the catalogue: typed defaults, and jobs that cannot run."""
import json

import pytest

from execution.models import Submission
from tests.clients import client_for, errors
from tests.factories import make_job, make_parameter, make_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def typed_job():
    task = make_task("fit", "fit $P1 $P2 $P3 $P4 $P5 $P6")
    make_parameter(task, "rounds", flag="-n", type="int", default="10")
    make_parameter(task, "rate", flag="-r", type="float", default="0.25")
    make_parameter(task, "verbose", flag="-v", bool_valued=True, default="true")
    make_parameter(task, "quiet", flag="-q", bool_valued=True)
    make_parameter(task, "label", flag="-l", default="run one")
    make_parameter(task, "seed", flag="-s", type="int")
    return make_job("fitting", steps=[task])


def test_endpoint_defaults_are_json_values_of_their_type(typed_job):
    [endpoint] = client_for(None).get("/api/endpoints/").json()
    defaults = {parameter["name"]: parameter["default"] for parameter in endpoint["parameters"]}
    assert defaults == {"fit_rounds": 10, "fit_rate": 0.25, "fit_verbose": True, "fit_quiet": None, "fit_label": "run one", "fit_seed": None}
    detail = client_for(None).get("/api/jobs/fitting/").json()
    assert {parameter["name"]: parameter["default"] for parameter in detail["parameters"]} == defaults


def test_schema_defaults_are_typed_too(typed_job):
    schema = client_for(None).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    properties = json.loads(schema.content)["components"]["schemas"]["Job_fitting"]["properties"]
    assert (properties["fit_rounds"]["type"], properties["fit_rounds"]["default"]) == ("integer", 10)
    assert (properties["fit_verbose"]["type"], properties["fit_verbose"]["default"]) == ("boolean", True)
    assert "default" not in properties["fit_seed"]


def test_a_job_without_steps_is_not_listed_and_refuses_submissions_naming_it():
    make_job("empty")
    assert client_for(None).get("/api/endpoints/").json() == []
    response = client_for(None).post("/api/submissions/", {"job": "empty"}, format="json")
    assert response.status_code == 400
    assert errors(response) == {"job": ["job 'empty' has no steps, so it is not runnable"]}
    assert not Submission.objects.exists()


def test_a_batch_with_a_job_without_steps_stores_nothing():
    make_job("full", steps=[make_task("t", "true")])
    make_job("empty")
    response = client_for(None).post("/api/submissions/", {"job": "full,empty"}, format="json")
    assert response.status_code == 400
    assert errors(response) == {"job": ["job 'empty' has no steps, so it is not runnable"]}
    assert not Submission.objects.exists()


def test_a_job_whose_saved_rest_names_clash_refuses_submissions():
    # Saved before saving refused it: one value would silently reach both tasks.
    first, second = make_task("a_b", "echo $P1"), make_task("a", "echo $P1")
    make_parameter(first, "c")
    make_parameter(second, "b_c")
    make_job("clashing", steps=[first, second])
    response = client_for(None).post("/api/submissions/", {"job": "clashing", "a_b_c": "x"}, format="json")
    assert response.status_code == 400
    assert errors(response) == {"job": [
        "job 'clashing' is not runnable: parameter 'b_c' of task 'a' and parameter 'c' of task 'a_b' are both 'a_b_c'; an administrator must rename one"
    ]}
    assert not Submission.objects.exists()
