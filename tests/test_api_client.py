"""The served OpenAPI schema is valid, and a client generated from it works unmodified against a live server.

openapi-python-client (its command line) generates a client from the schema
the live server serves; a separate Python process imports it as generated and
submits as JSON and as multipart with a file, polls to complete while a worker
runs the steps, lists with filters, and downloads a result and the archive.
"""
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import requests
from openapi_spec_validator.validation.validators import OpenAPIV30SpecValidator

from execution.models import Submission
from tests.factories import make_job, make_parameter, make_task

pytestmark = pytest.mark.slow

GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture
def catalogue(transactional_db):
    tag = make_task("tag", "printf '%s %s %s\\n' $P1 $P2 $P4 > $O1; cat $I1 >> $O1", in_glob=".input", out_glob=".tagged", description="Tag the upload.")
    make_parameter(tag, "label", switchless=True, default="plain", description="A word to write first.")
    make_parameter(tag, "times", switchless=True, type="int", default="1")
    make_parameter(tag, "loud", flag="--loud", bool_valued=True, type="bool", default="false")
    make_parameter(tag, "mode", switchless=True, type="choice", choices="fast,slow", default="fast")
    make_job("tagging", steps=[tag], description="Tags the upload.")
    counting = make_task("count", "wc -l < $I1", in_glob=".input", stdout_glob=".count")
    make_parameter(counting, "n", flag="-n", type="int", required=True)
    make_job("counting", steps=[counting])
    make_job("nothing", steps=[make_task("idle", "true")])


def served_schema(live_server):
    response = requests.get(f"{live_server.url}/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}, timeout=30)
    assert response.status_code == 200
    return response.json()


def test_the_served_schema_is_valid_openapi_3(live_server, catalogue):
    document = served_schema(live_server)
    problems = [error.message for error in OpenAPIV30SpecValidator(document).iter_errors()]
    assert problems == []
    schemas = document["components"]["schemas"]
    # One request model per content type, both taking every job's parameters and any further one.
    content = document["paths"]["/api/submissions/"]["post"]["requestBody"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/SubmitJSONRequest"}
    assert content["multipart/form-data"]["schema"] == {"$ref": "#/components/schemas/SubmitMultipartRequest"}
    as_json, form = schemas["SubmitJSONRequest"], schemas["SubmitMultipartRequest"]
    assert form["properties"]["input_data"]["format"] == "binary"
    assert as_json["properties"]["input_data"] == {"type": "string", "description": "The upload's text; steps read it as <ID>.input."}
    # Each job's own shape is a component: types, choices, typed defaults, what it requires.
    tagging = schemas["Job_tagging"]["properties"]
    assert tagging["tag_times"] == {"type": "integer", "default": 1, "description": "Parameter of task 'tag'."}
    assert tagging["tag_loud"]["type"] == "boolean" and tagging["tag_loud"]["default"] is False
    assert tagging["tag_mode"]["enum"] == ["fast", "slow"] and tagging["tag_mode"]["default"] == "fast"
    assert schemas["Job_counting"]["required"] == ["count_n"] and "required" not in schemas["Job_nothing"]
    # Both request models take every job's parameters, defaults said rather than given, and any further one.
    assert as_json["properties"]["tag_times"] == {"type": "integer", "description": "Parameter of task 'tag'. Default: 1."}
    assert as_json["properties"]["tag_mode"]["enum"] == ["fast", "slow"] and "count_n" in as_json["properties"]
    assert "tagging: tag_label, tag_times, tag_loud, tag_mode (schema Job_tagging)" in as_json["description"]
    assert "counting: count_n (schema Job_counting)" in form["description"]
    # A form's fields start empty (Swagger UI sends only the fields filled in); the job's holds the first job.
    assert form["properties"]["tag_times"] == {**as_json["properties"]["tag_times"], "example": ""}
    assert form["properties"]["job"]["example"] == "counting"  # the first runnable job, by name
    assert as_json["additionalProperties"]["anyOf"] == [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
    assert form["additionalProperties"] == {
        "type": "string", "description": "A parameter of the job, by its REST name (<task>_<alias>); the Job_<name> components list each job's.",
    }
    assert all("default" not in field for model in (as_json, form) for field in model["properties"].values())
    examples = content["application/json"]["examples"]
    assert examples["tagging"]["value"] == {"job": "tagging", "input_data": "one line\nanother line\n", "tag_label": "plain", "tag_times": 1, "tag_loud": False, "tag_mode": "fast"}
    # Statuses are enums.
    assert schemas["SubmissionStatusEnum"]["enum"] == ["submitted", "running", "paused", "waiting", "complete", "error", "crash", "cancelled"]
    assert "succeeded" in schemas["NodeStatusEnum"]["enum"]
    assert schemas["Node"]["properties"]["status"] == {"$ref": "#/components/schemas/NodeStatusEnum"}
    assert schemas["SubmissionSummary"]["properties"]["status"] == {"$ref": "#/components/schemas/SubmissionStatusEnum"}
    # The list's filters are documented.
    listed = {parameter["name"]: parameter for parameter in document["paths"]["/api/submissions/"]["get"]["parameters"]}
    assert {"status", "job", "search", "ordering", "created_after", "created_before", "limit", "offset"} <= set(listed)
    assert listed["status"]["schema"]["items"] == {"$ref": "#/components/schemas/SubmissionStatusEnum"}
    assert "/api/submissions/{uuid}/archive/" in document["paths"] and "/api/submissions/{uuid}/ro-crate/" in document["paths"]


CLIENT_SCRIPT = textwrap.dedent('''
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from sluice_client import AuthenticatedClient
    from sluice_client.api.submissions import (
        submissions_archive_retrieve, submissions_create, submissions_list, submissions_results_retrieve, submissions_retrieve,
    )
    from sluice_client.models import JobTaggingTagMode, SubmissionStatusEnum, SubmissionsListOrderingItem, SubmitJSONRequest, SubmitMultipartRequest
    from sluice_client.types import File

    client = AuthenticatedClient(base_url=sys.argv[2], token=sys.argv[3], prefix="Token", timeout=30)
    made = {}
    as_json = SubmitJSONRequest(job="tagging", input_data="from json\\n", tag_label="hello", tag_times=3, tag_loud=True, submission_name="json")
    made["json"] = submissions_create.sync_detailed(client=client, body=as_json)
    upload = File(payload=open(sys.argv[4], "rb"), file_name="My Reads.txt", mime_type="text/plain")
    as_form = SubmitMultipartRequest(job="tagging", input_data=upload, tag_label="form", tag_mode=JobTaggingTagMode.SLOW, submission_name="multipart")
    as_form.additional_properties["tag_times"] = "2"
    made["multipart"] = submissions_create.sync_detailed(client=client, body=as_form)
    out = {}
    for kind, response in made.items():
        assert response.status_code == 201, (kind, response.status_code, response.content)
        uuid = response.parsed.uuid
        deadline = time.monotonic() + 90
        while True:
            document = submissions_retrieve.sync(uuid, client=client)
            if document.status not in (SubmissionStatusEnum.SUBMITTED, SubmissionStatusEnum.RUNNING):
                break
            assert time.monotonic() < deadline, document.status
            time.sleep(0.2)
        result = next(r for r in document.results if r.node == "tag")
        result_id = int(result.url.rstrip("/").rsplit("/", 1)[-1])
        download = submissions_results_retrieve.sync_detailed(uuid, result_id, client=client)
        archive = submissions_archive_retrieve.sync_detailed(uuid, client=client)
        out[kind] = {
            "uuid": str(uuid), "status": document.status.value, "upload_name": document.upload_name, "params": document.params.to_dict(),
            "node_status": document.nodes[0].status.value, "download": download.content.decode(), "download_status": download.status_code,
            "archive_status": archive.status_code, "archive": archive.content.hex(), "ro_crate_url": document.ro_crate_url,
        }
    listed = submissions_list.sync(client=client, status=[SubmissionStatusEnum.COMPLETE], search="multi", ordering=[SubmissionsListOrderingItem("-created_at")])
    out["listed"] = [item.submission_name for item in listed.results]
    print(json.dumps(out))
''')


def generate_client(live_server, tmp_path):
    """Generate a client package, sluice_client, from the schema the live server serves; return the directory holding it."""
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(served_schema(live_server)))
    packages = tmp_path / "generated"
    packages.mkdir()
    # A zip is binary to this generator only when told so (its own option, documented in docs/api.md).
    config = tmp_path / "generator.json"
    config.write_text(json.dumps({"content_type_overrides": {"application/zip": "application/octet-stream"}}))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # its formatter, ruff, is beside it
    completed = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(schema), "--meta", "none", "--config", str(config), "--output-path", str(packages / "sluice_client")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env, check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "Warning(s) encountered" not in output and "Error(s) encountered" not in output, output
    return packages


def test_a_generated_client_submits_polls_and_downloads_unmodified(live_server, worker, catalogue, owner, tmp_path):
    from knox.models import AuthToken

    _, token = AuthToken.objects.create(user=owner)
    packages = generate_client(live_server, tmp_path)
    upload = tmp_path / "reads.txt"
    upload.write_text("line one\nline two\n")
    script = tmp_path / "use_client.py"
    script.write_text(CLIENT_SCRIPT)
    completed = subprocess.run(
        [sys.executable, str(script), str(packages), live_server.url, token, str(upload)], capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = json.loads(completed.stdout.strip().splitlines()[-1])
    as_json, as_form = out["json"], out["multipart"]
    assert as_json["status"] == as_form["status"] == "complete"
    assert as_json["node_status"] == "succeeded"
    # JSON: typed values reached the step; the defaults filled in the rest.
    assert as_json["params"] == {"tag_label": "hello", "tag_times": 3, "tag_loud": True, "tag_mode": "fast"}
    assert as_json["download"] == "hello 3 fast\nfrom json\n" and as_json["download_status"] == 200
    # Multipart: the file arrived under its own name, and the form's fields as parameters.
    assert as_form["params"] == {"tag_label": "form", "tag_times": 2, "tag_loud": False, "tag_mode": "slow"}
    assert as_form["upload_name"] == "My Reads.txt"
    assert as_form["download"] == "form 2 slow\nline one\nline two\n"
    archive = zipfile.ZipFile(io.BytesIO(bytes.fromhex(as_form["archive"])))
    assert sorted(archive.namelist()) == ["tag/tag.tagged", "upload/My_Reads.txt"]
    assert archive.read("upload/My_Reads.txt") == b"line one\nline two\n"
    assert as_form["ro_crate_url"] == f"/api/submissions/{as_form['uuid']}/ro-crate/"
    assert out["listed"] == ["multipart"]
    assert Submission.objects.get(uuid=as_form["uuid"]).user == owner
