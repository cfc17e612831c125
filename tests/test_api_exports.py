"""Download all (a streamed zip), the Workflow Run RO-Crate export, and the filters of the submission list."""
import hashlib
import io
import json
import tracemalloc
import zipfile
from datetime import timedelta

import pytest
from django.http import StreamingHttpResponse
from django.utils import timezone
from rest_framework.test import APIClient

from execution.local import SynchronousRunner
from execution.models import Submission
from jobs.models import Configuration
from tests.clients import client_for
from tests.factories import make_job, make_parameter, make_task

pytestmark = pytest.mark.django_db


def run(job, data=b"a\nb\nc\n", upload_name="", user=None, **params):
    submission = SynchronousRunner(job, input=data, params=params, user=user).init().process()
    if upload_name:
        Submission.objects.filter(pk=submission.pk).update(upload_name=upload_name)
        submission.refresh_from_db()
    return submission


@pytest.fixture
def pipeline(db):
    count = make_task("count", "wc -l < $I1", in_glob=".input", stdout_glob=".count", description="Count lines.")
    make_parameter(count, "n", flag="-n", type="int", default="3", description="How many.")
    Configuration.objects.create(task=count, name="coreutils", version="9.4")
    double = make_task("double", "cat $I1 $I1 > $O1", in_glob=".input", out_glob=".twice")
    return make_job("pipeline", steps=[count, double], description="Counts and doubles.")


def unzip(response):
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


# --- download all ---------------------------------------------------------------------


def test_the_archive_holds_every_current_result_in_folders_by_step_under_readable_names(owner, pipeline):
    submission = run(pipeline, upload_name="../../etc/My Data.txt", user=owner, count_n=5)
    response = client_for(owner).get(f"/api/submissions/{submission.uuid}/archive/")
    assert response.status_code == 200
    assert f'filename="pipeline-{submission.uuid}.zip"' in response["Content-Disposition"]
    archive = unzip(response)
    assert sorted(archive.namelist()) == ["count/count.count", "double/double.twice", "upload/My_Data.txt"]
    assert archive.read("upload/My_Data.txt") == b"a\nb\nc\n"
    assert archive.read("count/count.count").strip() == b"3"
    assert archive.read("double/double.twice") == b"a\nb\nc\n" * 2
    assert archive.testzip() is None
    made = submission.results.get(node__key="count").created_at
    assert archive.getinfo("count/count.count").date_time[:5] == made.timetuple()[:5]  # the result's time (UTC), not the download's


def test_the_archive_leaves_out_superseded_results_and_names_a_nameless_upload_input(owner, pipeline):
    submission = run(pipeline, user=owner)
    old = submission.results.get(node__key="count")
    old.superseded = True
    old.save()
    names = unzip(client_for(owner).get(f"/api/submissions/{submission.uuid}/archive/")).namelist()
    assert sorted(names) == ["double/double.twice", "upload/input"]


def test_the_archive_is_streamed_and_never_built_in_memory(owner, tmp_path):
    big = make_task("big", "head -c 8000000 /dev/urandom > $O1", out_glob=".bin")
    submission = run(make_job("big", steps=[big]), data=None, user=owner)
    [result] = submission.results.all()
    assert result.size == 8_000_000
    with result.file.open("rb") as handle:
        expected = hashlib.sha256(handle.read()).hexdigest()
    response = client_for(owner).get(f"/api/submissions/{submission.uuid}/archive/")
    assert isinstance(response, StreamingHttpResponse)
    target = tmp_path / "all.zip"
    pieces = biggest = 0
    tracemalloc.start()
    with target.open("wb") as out:
        for piece in response.streaming_content:
            pieces += 1
            biggest = max(biggest, len(piece))
            out.write(piece)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert pieces > 5, "the zip came in one piece"
    assert biggest <= 2 * 1024 * 1024, biggest
    # A few pieces of CHUNK (1 MiB) at once, whatever the size of the file: read, compressed, handed on.
    assert peak < 6 * 1024 * 1024, f"{peak} bytes held at once while streaming an 8 MB file"
    with zipfile.ZipFile(target) as archive:
        assert hashlib.sha256(archive.read("big/big.bin")).hexdigest() == expected


def test_the_archive_is_as_private_as_the_submission(owner, other_user, staff, pipeline):
    submission = run(pipeline, user=owner)
    for path in ("archive", "ro-crate"):
        refused = client_for(other_user).get(f"/api/submissions/{submission.uuid}/{path}/")
        assert refused.status_code == 404 and refused.json()["detail"] == f"no submission {submission.uuid}"
        assert APIClient().get(f"/api/submissions/{submission.uuid}/{path}/").status_code == 404
        assert client_for(staff).get(f"/api/submissions/{submission.uuid}/{path}/").status_code == 200


def test_a_file_missing_from_storage_is_a_json_404_before_any_byte(owner, pipeline):
    submission = run(pipeline, user=owner)
    result = submission.results.get(node__key="count")
    result.file.storage.delete(result.file.name)
    response = client_for(owner).get(f"/api/submissions/{submission.uuid}/archive/")
    assert response.status_code == 404
    assert "count/count.count" in response.json()["detail"]


def test_the_submission_document_names_the_upload_and_links_the_exports(owner, pipeline):
    submission = run(pipeline, upload_name="reads.txt", user=owner)
    document = client_for(owner).get(f"/api/submissions/{submission.uuid}/").json()
    assert document["upload_name"] == "reads.txt"
    assert document["archive_url"] == f"/api/submissions/{submission.uuid}/archive/"
    assert document["ro_crate_url"] == f"/api/submissions/{submission.uuid}/ro-crate/"
    assert document["status"] == "complete" and document["results"]  # the fields it had are still there


# --- RO-Crate -------------------------------------------------------------------------


def references(value):
    """Every {"@id": …} reference inside ``value``."""
    if isinstance(value, dict):
        if set(value) == {"@id"}:
            yield value["@id"]
        else:
            for item in value.values():
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def check_crate(archive):
    """Check the RO-Crate JSON-LD structure of ``archive``; return its entities by @id."""
    metadata = json.loads(archive.read("ro-crate-metadata.json"))
    assert metadata["@context"][0] == "https://w3id.org/ro/crate/1.1/context"
    entities = {entity["@id"]: entity for entity in metadata["@graph"]}
    assert len(entities) == len(metadata["@graph"]), "an @id is defined twice"
    descriptor = entities["ro-crate-metadata.json"]
    assert descriptor["@type"] == "CreativeWork" and descriptor["about"] == {"@id": "./"}
    assert {"@id": "https://w3id.org/ro/crate/1.1"} in descriptor["conformsTo"]
    root = entities["./"]
    assert root["@type"] == "Dataset"
    assert {"@id": "https://w3id.org/ro/wfrun/workflow/0.5"} in root["conformsTo"]
    assert root["mainEntity"] == {"@id": "workflow.json"} and root["mentions"]
    for entity in metadata["@graph"]:
        for reference in references({key: value for key, value in entity.items() if key != "@id"}):
            # Vocabulary terms (the container image kind) are IRIs of the context's namespace, not entities.
            assert reference in entities or reference.startswith("https://w3id.org/ro/terms/workflow-run#"), f"{entity['@id']} refers to undefined {reference}"
    names = set(archive.namelist())
    for part in root["hasPart"]:
        assert part["@id"] in names, f"{part['@id']} is in hasPart but not in the zip"
        assert "File" in entities[part["@id"]]["@type"]
    for entity in metadata["@graph"]:
        if entity["@type"] == "File" or "File" in entity["@type"]:
            assert entity["@id"] in names
    assert names - {part["@id"] for part in root["hasPart"]} == {"ro-crate-metadata.json"}
    return entities


def test_the_ro_crate_describes_inputs_steps_tools_outputs_and_times(owner, pipeline):
    submission = run(pipeline, upload_name="reads.txt", user=owner, count_n=5)
    submission.nodes.filter(key="count").update(image_digest="sha256:" + "ab" * 32)
    response = client_for(owner).get(f"/api/submissions/{submission.uuid}/ro-crate/")
    assert response.status_code == 200
    assert f"pipeline-{submission.uuid}-ro-crate.zip" in response["Content-Disposition"]
    archive = unzip(response)
    entities = check_crate(archive)
    assert archive.read("upload/reads.txt") == b"a\nb\nc\n"
    workflow = entities["workflow.json"]
    assert set(workflow["@type"]) >= {"File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"}
    assert json.loads(archive.read("workflow.json"))["steps"][0]["key"] == "count"
    # Inputs: the upload and the parameters, as formal parameters with values.
    assert {"@id": "#param-input_data"} in workflow["input"] and {"@id": "#param-count_n"} in workflow["input"]
    assert entities["#param-count_n"]["@type"] == "FormalParameter" and entities["#param-count_n"]["additionalType"] == "Integer"
    value = entities["#pv-count_n"]
    assert value["@type"] == "PropertyValue" and value["value"] == "5" and value["exampleOfWork"] == {"@id": "#param-count_n"}
    assert entities["upload/reads.txt"]["exampleOfWork"] == {"@id": "#param-input_data"}
    # The run of the whole job.
    [run_ref] = entities["./"]["mentions"]
    run_action = entities[run_ref["@id"]]
    assert run_action["@type"] == "CreateAction" and run_action["instrument"] == {"@id": "workflow.json"}
    assert run_action["actionStatus"] == "http://schema.org/CompletedActionStatus"
    assert run_action["startTime"] and run_action["endTime"] == submission.finished_at.isoformat()
    assert {"@id": "#pv-count_n"} in run_action["object"] and {"@id": "upload/reads.txt"} in run_action["object"]
    assert {"@id": "count/count.count"} in run_action["result"]
    # Each step: a HowToStep, a CreateAction with its tool, times and status, and a ControlAction between them.
    steps = [entities[ref["@id"]] for ref in workflow["step"]]
    assert [step["name"] for step in steps] == ["count", "double"]
    assert all(step["@type"] == "HowToStep" for step in steps)
    count_action = entities["#action-count"]
    node = submission.nodes.get(key="count")
    assert count_action["@type"] == "CreateAction" and count_action["instrument"] == {"@id": "#tool-count"}
    assert count_action["startTime"] == node.started_at.isoformat() and count_action["endTime"] == node.finished_at.isoformat()
    assert count_action["actionStatus"] == "http://schema.org/CompletedActionStatus"
    assert count_action["result"] == [{"@id": "count/count.count"}]
    assert entities["#control-count"] == {
        "@id": "#control-count", "@type": "ControlAction", "name": "orchestrate count",
        "instrument": {"@id": "#step-count"}, "object": {"@id": "#action-count"},
    }
    # The tool, its software and version, and the image the step ran in.
    tool = entities["#tool-count"]
    assert tool["@type"] == "SoftwareApplication" and {"@id": "#param-count_n"} in tool["input"]
    [software] = [entities[ref["@id"]] for ref in tool["softwareRequirements"]]
    assert software["name"] == "coreutils" and software["softwareVersion"] == "9.4"
    image = entities[count_action["containerImage"]["@id"]]
    assert image["@type"] == "ContainerImage" and image["sha256"] == "ab" * 32
    assert entities["#organize"]["result"] == run_ref
    assert {"@id": "#control-double"} in entities["#organize"]["object"]


def test_a_failed_step_is_a_failed_action_with_its_error(owner):
    bad = make_task("bad", "echo oops >&2; exit 3", stdout_glob=".out")
    submission = run(make_job("failing", steps=[bad]), data=None, user=owner)
    assert submission.status == "error"
    entities = check_crate(unzip(client_for(owner).get(f"/api/submissions/{submission.uuid}/ro-crate/")))
    assert entities["#action-bad"]["actionStatus"] == "http://schema.org/FailedActionStatus"
    assert entities["#action-bad"]["exitCode"] == 3
    run_action = entities[entities["./"]["mentions"][0]["@id"]]
    assert run_action["actionStatus"] == "http://schema.org/FailedActionStatus" and run_action["error"]


def test_an_unfinished_submission_cannot_be_exported(owner, pipeline):
    submission = run(pipeline, user=owner)
    Submission.objects.filter(pk=submission.pk).update(status="running", finished_at=None)
    response = client_for(owner).get(f"/api/submissions/{submission.uuid}/ro-crate/")
    assert response.status_code == 409
    body = response.json()
    assert "running" in body["detail"] and "finished" in body["detail"]
    assert body["errors"]["status"] == ["is running; must be one of cancelled, complete, crash, error"]
    assert client_for(owner).get(f"/api/submissions/{submission.uuid}/archive/").status_code == 200  # what is there so far


# --- list filters ---------------------------------------------------------------------


@pytest.fixture
def listed(owner, other_user):
    alpha = make_job("alpha", steps=[make_task("a", "true")])
    beta = make_job("beta", steps=[make_task("b", "true")])
    now = timezone.now()
    made = {}
    for name, job, status, user, days, upload in (
        ("first", alpha, "complete", owner, 10, "genes.fa"),
        ("second", alpha, "error", owner, 5, ""),
        ("third", beta, "running", owner, 1, "reads.txt"),
        ("theirs", beta, "complete", other_user, 2, ""),
    ):
        submission = Submission.objects.create(job=job, user=user, status=status, submission_name=name, upload_name=upload)
        Submission.objects.filter(pk=submission.pk).update(
            created_at=now - timedelta(days=days), finished_at=None if status == "running" else now - timedelta(days=days - 0.5),
        )
        made[name] = submission
    return made


def names(response):
    assert response.status_code == 200, response.content
    return [item["submission_name"] for item in response.json()["results"]]


def test_filters_by_status_repeated_or_comma_separated(owner, listed):
    client = client_for(owner)
    assert names(client.get("/api/submissions/?status=complete")) == ["first"]
    assert names(client.get("/api/submissions/?status=complete,error")) == ["second", "first"]
    assert names(client.get("/api/submissions/?status=complete&status=running")) == ["third", "first"]


def test_filters_by_job_search_and_creation_dates(owner, listed):
    client = client_for(owner)
    assert names(client.get("/api/submissions/?job=beta")) == ["third"]  # theirs is another user's
    assert names(client.get("/api/submissions/?search=GENES")) == ["first"]  # the upload's name
    assert names(client.get("/api/submissions/?search=alp")) == ["second", "first"]  # the job's name
    assert names(client.get("/api/submissions/?search=thi")) == ["third"]  # the submission's name
    after = (timezone.now() - timedelta(days=6)).date().isoformat()
    assert names(client.get(f"/api/submissions/?created_after={after}")) == ["third", "second"]
    before = (timezone.now() - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    assert names(client.get(f"/api/submissions/?created_before={before}")) == ["second", "first"]


def test_orders_by_the_named_field(owner, staff, listed):
    client = client_for(owner)
    assert names(client.get("/api/submissions/?ordering=created_at")) == ["first", "second", "third"]
    assert names(client.get("/api/submissions/?status=complete,error&ordering=-finished_at")) == ["second", "first"]
    assert names(client.get("/api/submissions/?status=complete,error&ordering=finished_at")) == ["first", "second"]
    assert names(client.get("/api/submissions/?ordering=status")) == ["first", "second", "third"]
    assert names(client_for(staff).get("/api/submissions/?ordering=-job,created_at")) == ["theirs", "third", "first", "second"]
    assert names(client_for(staff).get("/api/submissions/?ordering=-job&ordering=created_at")) == ["theirs", "third", "first", "second"]


def test_staff_filter_everyones_submissions(staff, listed):
    assert names(client_for(staff).get("/api/submissions/?status=complete")) == ["theirs", "first"]


@pytest.mark.parametrize("query, field", [
    ("status=finished", "status"),
    ("status=complete,nope", "status"),
    ("created_after=yesterday", "created_after"),
    ("created_before=2026-13-01", "created_before"),
    ("ordering=uuid", "ordering"),
    ("created_before=", "created_before"),
    ("status=", "status"),
    ("ordering=", "ordering"),
])
def test_a_bad_filter_value_is_a_400_naming_the_field(owner, listed, query, field):
    response = client_for(owner).get(f"/api/submissions/?{query}")
    assert response.status_code == 400
    body = response.json()
    assert list(body["errors"]) == [field] and body["errors"][field][0]


def test_bad_filter_values_are_named_with_what_is_allowed(owner, listed):
    body = client_for(owner).get("/api/submissions/?status=done&created_after=last-week&ordering=-uuid").json()
    assert body["errors"] == {
        "status": ["must be one or more of submitted, running, paused, waiting, complete, error, crash, cancelled (repeated or comma-separated); got 'done'"],
        "created_after": ["must be an ISO 8601 date or time, e.g. 2026-11-23 or 2026-11-23T12:00:00Z; got 'last-week'"],
        "ordering": ["must be one of created_at, finished_at, status, job, each maybe with a leading '-' (repeated or comma-separated); got '-uuid'"],
    }
    empty = client_for(owner).get("/api/submissions/?created_before=").json()
    assert empty["errors"] == {"created_before": ["must not be empty; leave the parameter out not to filter by it"]}


def test_options_and_the_browsable_page_of_the_filtered_list_answer(owner, listed):
    client = client_for(owner)
    options = client.options("/api/submissions/?status=complete")
    assert options.status_code == 200 and options.json()["name"] == "Submission List"
    page = client.get("/api/submissions/?status=complete", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and "first" in page.content.decode() and "second" not in page.content.decode()
