"""A submission's files as one zip, streamed: every current result, and a Workflow Run RO-Crate.

The zip is written as it is sent, a piece at a time, and never held whole in
memory or on disk: files are read from storage through ``execution.stored``
(a directory or an S3 bucket) CHUNK bytes at a time, and each member is
followed by a data descriptor, so nothing needs to seek back.

Names inside the zip are readable but never taken from a user as a path: a
result is ``<step key>/<step key><ending>`` and the upload is
``upload/<its original name, reduced to one safe file name, or "input">``.
Stored names stay id-based.

The RO-Crate (https://w3id.org/ro/wfrun/workflow/0.5, with the step detail of
the Provenance Run Crate, https://w3id.org/ro/wfrun/provenance/0.5) holds the
same files, a ``workflow.json`` describing the job, and
``ro-crate-metadata.json`` saying what ran, when, with what.
"""
import json
import re
import zipfile
from datetime import UTC, datetime
from urllib.parse import quote

from . import stored
from .states import NodeStatus, SubmissionStatus

__all__ = ["CrateRefused", "archive_name", "entries", "ro_crate", "stream", "zip_stream"]

UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
UPLOAD_DIR = "upload"
CRATE_CONTEXT = ["https://w3id.org/ro/crate/1.1/context", "https://w3id.org/ro/terms/workflow-run/context"]
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/provenance/0.5": ("Provenance Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
ACTION_STATUS = {
    NodeStatus.SUCCEEDED: "http://schema.org/CompletedActionStatus",
    NodeStatus.CACHED: "http://schema.org/CompletedActionStatus",
    NodeStatus.FAILED: "http://schema.org/FailedActionStatus",
    NodeStatus.CANCELLED: "http://schema.org/FailedActionStatus",
    NodeStatus.SKIPPED: "http://schema.org/PotentialActionStatus",
}
RUN_STATUS = {
    SubmissionStatus.COMPLETE: "http://schema.org/CompletedActionStatus",
    SubmissionStatus.ERROR: "http://schema.org/FailedActionStatus",
    SubmissionStatus.CRASH: "http://schema.org/FailedActionStatus",
    SubmissionStatus.CANCELLED: "http://schema.org/FailedActionStatus",
}
PARAMETER_TYPES = {"string": "Text", "int": "Integer", "float": "Float", "bool": "Boolean", "choice": "Text"}


class CrateRefused(Exception):
    """The submission has not finished, so its run cannot be described yet."""


def safe_part(text, fallback):
    """``text`` as one file name of safe characters (no separators, no leading dots), or ``fallback`` when nothing is left."""
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = UNSAFE.sub("_", text).lstrip(".")[:200]
    return text or fallback


def entries(submission):
    """``[(name in the zip, Result)]`` for the submission's current (not superseded) results, upload first."""
    results = list(submission.results.filter(superseded=False).select_related("node").order_by("id"))
    taken, named = set(), []
    for result in sorted(results, key=lambda result: (result.node_id is not None, result.id)):
        if result.node_id is None:
            folder, base = UPLOAD_DIR, safe_part(submission.upload_name, "input")
        else:
            folder = safe_part(result.node.key, "step")
            base = safe_part(result.node.key + (result.ending or ""), "result")
        name, count = f"{folder}/{base}", 1
        while name.lower() in taken:  # two results of one step with one ending, or names that differ only in case
            count += 1
            stem, dot, ending = base.partition(".")
            name = f"{folder}/{stem}-{count}{dot}{ending}"
        taken.add(name.lower())
        named.append((name, result))
    return named


def missing(named):
    """The zip names of results whose files are not in storage."""
    return [name for name, result in named if not result.file.storage.exists(result.file.name)]


class _Sink:
    """The file ``zipfile`` writes to: it keeps what was written until the stream takes it."""

    def __init__(self):
        self.pieces = []

    def write(self, data):
        self.pieces.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def take(self):
        data, self.pieces = b"".join(self.pieces), []
        return data


def zip_stream(members):
    """Yield a zip of ``members`` piece by piece.

    ``members`` are ``(name, source, size, when)``: ``source`` is bytes or a stored
    file (a FieldFile), ``size`` its length when known (it picks ZIP64 for big files),
    ``when`` the file's time (None: now), written in UTC.
    """
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, source, size, when in members:
            info = zipfile.ZipInfo(name, date_time=(when or datetime.now(UTC)).astimezone(UTC).timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.file_size = size or 0
            with archive.open(info, mode="w", force_zip64=(size or 0) > zipfile.ZIP64_LIMIT // 2) as member:
                if isinstance(source, bytes):
                    member.write(source)
                else:
                    with stored.reader(source) as handle:
                        while chunk := handle.read(stored.CHUNK):
                            member.write(chunk)
                            piece = sink.take()
                            if piece:
                                yield piece
            piece = sink.take()
            if piece:
                yield piece
    yield sink.take()


def archive_name(submission, kind):
    return f"{safe_part(submission.job.name, 'job')}-{submission.uuid}{'-ro-crate' if kind == 'crate' else ''}.zip"


def stream(submission, named):
    """The zip of every current result of ``submission`` (``named`` from ``entries``)."""
    return zip_stream((name, result.file, result.size, result.created_at) for name, result in named)


# --- RO-Crate ---------------------------------------------------------------------------


def _ref(identifier):
    return {"@id": identifier}


def _time(value):
    return value.isoformat() if value else None


def _clean(entity):
    return {key: value for key, value in entity.items() if value not in (None, "", [])}


def workflow_document(job, nodes):
    """``workflow.json``: the job as registered (its steps and parameters), and the nodes this run had."""
    return {
        "job": job.name,
        "description": job.description,
        "steps": [
            {"key": step.key, "task": step.task.name, "ordering": step.ordering, "after": step.after, "enabled": step.enabled, "when": step.when}
            for step in job.steps.select_related("task").order_by("ordering", "id")
        ],
        "parameters": [
            {"name": parameter.rest_name, "type": "bool" if parameter.bool_valued else parameter.type, "default": parameter.typed_default, "description": parameter.description}
            for parameter in job.parameters()
        ],
        "nodes": [{"key": node.key, "task": node.task.name, "added_by": node.added_by} for node in nodes],
    }


def ro_crate(submission, named, engine_version=""):
    """``(metadata, members)``: the RO-Crate's JSON-LD, and the files for ``zip_stream`` (metadata first).

    Raises:
        CrateRefused: the submission has not finished.
    """
    if submission.status not in SubmissionStatus.TERMINAL:
        raise CrateRefused(f"submission {submission.uuid} is {submission.status}; an RO-Crate describes a finished run, so ask again when it has finished")
    job = submission.job
    nodes = list(submission.nodes.select_related("task").prefetch_related("task__configurations", "task__parameters").order_by("id"))
    graph = {}

    def add(entity):
        graph[entity["@id"]] = _clean(entity)
        return _ref(entity["@id"])

    run_id, engine_id, workflow_id = f"#run-{submission.uuid}", "#sluice", "workflow.json"
    files = {}
    for name, result in named:
        files[result.pk] = name
    upload = next(((name, result) for name, result in named if result.node_id is None), None)

    # Formal parameters of the workflow: the upload and every parameter of the job.
    inputs, values = [], []
    if upload is not None:
        inputs.append(add({"@id": "#param-input_data", "@type": "FormalParameter", "additionalType": "File", "name": "input_data",
                           "description": "The upload; steps read it as <ID>.input.", "valueRequired": False}))
    parameters = {parameter.rest_name: parameter for parameter in job.parameters()}
    for name, parameter in parameters.items():
        kind = "bool" if parameter.bool_valued else parameter.type
        default = parameter.typed_default
        inputs.append(add({
            "@id": f"#param-{name}", "@type": "FormalParameter", "name": name, "additionalType": PARAMETER_TYPES.get(kind, "Text"),
            "description": parameter.description, "defaultValue": None if default is None else json.dumps(default) if not isinstance(default, str) else default,
            "valueRequired": bool(parameter.required and parameter.default == ""),
        }))
    for name, value in sorted((submission.params or {}).items()):
        if value is None:
            continue
        if f"#param-{name}" not in graph:
            add({"@id": f"#param-{name}", "@type": "FormalParameter", "name": name, "additionalType": "Text"})
        values.append(add({"@id": f"#pv-{name}", "@type": "PropertyValue", "name": name, "value": value if isinstance(value, str) else json.dumps(value),
                           "exampleOfWork": _ref(f"#param-{name}")}))

    # Tools (tasks), their software, and the formal parameters of what each step writes.
    tools, outputs_of = {}, {}
    for node in nodes:
        task = node.task
        tool_id = f"#tool-{task.name}"
        if tool_id not in tools:
            software = [
                add({"@id": f"#software-{quote(config.name, safe='')}-{quote(config.version, safe='')}", "@type": "SoftwareApplication" if config.kind == "software" else "Dataset",
                     "name": config.name, "softwareVersion": config.version if config.kind == "software" else None, "version": config.version if config.kind != "software" else None})
                for config in task.configurations.all()
            ]
            tool_inputs = [_ref(f"#param-{p.rest_name}") for p in task.parameters.all() if f"#param-{p.rest_name}" in graph]
            if ".input" in task.in_endings and upload is not None:
                tool_inputs.insert(0, _ref("#param-input_data"))
            tools[tool_id] = {"@id": tool_id, "@type": "SoftwareApplication", "name": task.name, "description": task.description,
                              "softwareRequirements": software, "input": tool_inputs, "output": []}
    for name, result in named:
        if result.node_id is None:
            continue
        output_id = f"#output-{quote(result.node.key, safe='')}-{quote(result.ending or 'file', safe='')}"
        if output_id not in graph:
            add({"@id": output_id, "@type": "FormalParameter", "additionalType": "File", "name": f"{result.node.key}{result.ending}"})
            tool = tools[f"#tool-{result.node.task.name}"]
            if _ref(output_id) not in tool["output"]:
                tool["output"].append(_ref(output_id))
        outputs_of.setdefault(result.node_id, []).append((name, result, output_id))
    for tool in tools.values():
        add(tool)

    # Files: the upload, and every result, each an example of its formal parameter.
    parts = [_ref(workflow_id)]
    if upload is not None:
        name, result = upload
        parts.append(add({"@id": name, "@type": "File", "name": submission.upload_name or "input", "contentSize": str(result.size),
                          "exampleOfWork": _ref("#param-input_data"), "description": "The upload."}))
    for produced in outputs_of.values():
        for name, result, output_id in produced:
            parts.append(add({"@id": name, "@type": "File", "name": name.rsplit("/", 1)[-1], "contentSize": str(result.size), "exampleOfWork": _ref(output_id)}))

    # Steps and their runs.
    steps, controls, run_results = [], [], []
    read_upload = [_ref(upload[0])] if upload is not None else []
    for position, node in enumerate(nodes):
        key = quote(node.key, safe="")
        step = add({"@id": f"#step-{key}", "@type": "HowToStep", "name": node.key, "position": str(position), "workExample": _ref(f"#tool-{node.task.name}")})
        steps.append(step)
        results = [_ref(name) for name, _, _ in outputs_of.get(node.pk, [])]
        run_results.extend(results)
        status = ACTION_STATUS.get(node.status, "http://schema.org/FailedActionStatus")
        image = None
        if node.image_digest:
            digest = node.image_digest.split(":", 1)[-1]
            image_name, tag = node.task.image, ""
            if ":" in image_name.rsplit("/", 1)[-1]:
                image_name, tag = image_name.rsplit(":", 1)
            image = add({"@id": f"#image-{quote(digest, safe='')}", "@type": "ContainerImage",
                         "additionalType": _ref("https://w3id.org/ro/terms/workflow-run#DockerImage"),
                         "name": image_name or None, "tag": tag or None, "sha256": digest})
        action = add({
            "@id": f"#action-{key}", "@type": "CreateAction", "name": f"Run of step {node.key}", "instrument": _ref(f"#tool-{node.task.name}"),
            "startTime": _time(node.started_at), "endTime": _time(node.finished_at), "actionStatus": status,
            "error": node.message if status == "http://schema.org/FailedActionStatus" else None,
            "object": (read_upload if ".input" in node.task.in_endings else []) + [
                _ref(f"#pv-{p.rest_name}") for p in node.task.parameters.all() if f"#pv-{p.rest_name}" in graph
            ],
            "result": results, "containerImage": image, "exitCode": node.exit_code,
            "description": f"Node status: {node.status}; attempts: {node.attempt}.",
        })
        controls.append(add({"@id": f"#control-{key}", "@type": "ControlAction", "name": f"orchestrate {node.key}", "instrument": step, "object": action}))

    workflow_outputs = [_ref(output_id) for produced in outputs_of.values() for _, _, output_id in produced]
    add({
        "@id": workflow_id, "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"], "name": job.name, "description": job.description,
        "encodingFormat": "application/json", "programmingLanguage": _ref("#sluice-job"), "input": inputs,
        "output": list({item["@id"]: item for item in workflow_outputs}.values()), "hasPart": [_ref(tool_id) for tool_id in tools], "step": steps,
    })
    add({"@id": "#sluice-job", "@type": "ComputerLanguage", "name": "Sluice job", "alternateName": "sluice",
         "description": "A Sluice job: a graph of steps, each running a task; workflow.json lists them."})
    add({"@id": engine_id, "@type": "SoftwareApplication", "name": "Sluice", "softwareVersion": engine_version or None})
    run = add({
        "@id": run_id, "@type": "CreateAction", "name": f"Run of {job.name} (submission {submission.uuid})", "instrument": _ref(workflow_id),
        "startTime": _time(submission.started_at or submission.created_at), "endTime": _time(submission.finished_at),
        "actionStatus": RUN_STATUS[submission.status], "error": submission.last_message if RUN_STATUS[submission.status].endswith("FailedActionStatus") else None,
        "object": read_upload + values, "result": run_results, "description": submission.submission_name or None,
    })
    add({"@id": "#organize", "@type": "OrganizeAction", "name": "Run of Sluice", "instrument": _ref(engine_id), "result": run, "object": controls,
         "startTime": _time(submission.created_at), "endTime": _time(submission.finished_at)})
    for profile, (name, version) in PROFILES.items():
        add({"@id": profile, "@type": "CreativeWork", "name": name, "version": version})
    add({"@id": "https://w3id.org/ro/crate/1.1", "@type": "CreativeWork", "name": "RO-Crate", "version": "1.1"})
    add({
        "@id": "./", "@type": "Dataset", "name": f"{job.name} submission {submission.uuid}",
        "description": f"The run of job '{job.name}' for submission {submission.uuid}: its upload, parameters, steps and results.",
        "datePublished": _time(submission.finished_at or submission.created_at), "conformsTo": [_ref(profile) for profile in PROFILES],
        "hasPart": parts, "mainEntity": _ref(workflow_id), "mentions": [run],
    })
    add({"@id": "ro-crate-metadata.json", "@type": "CreativeWork", "about": _ref("./"),
         "conformsTo": [_ref("https://w3id.org/ro/crate/1.1"), _ref("https://w3id.org/workflowhub/workflow-ro-crate/1.0")]})
    order = ["ro-crate-metadata.json", "./"]
    metadata = {"@context": CRATE_CONTEXT, "@graph": [graph[key] for key in order] + [entity for key, entity in graph.items() if key not in order]}
    workflow = json.dumps(workflow_document(job, nodes), indent=2).encode()
    members = [
        ("ro-crate-metadata.json", json.dumps(metadata, indent=2).encode(), None, submission.finished_at),
        (workflow_id, workflow, len(workflow), submission.finished_at),
        *((name, result.file, result.size, result.created_at) for name, result in named),
    ]
    return metadata, members
