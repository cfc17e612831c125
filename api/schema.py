"""OpenAPI post-processing: show each runnable job's parameters to clients.

Each runnable job's parameters are a component, ``Job_<name>``: the job's
own shape, with types, choices, typed defaults and what it requires. The two
request models of ``POST /api/submissions/`` (``SubmitJSONRequest`` and
``SubmitMultipartRequest``, one per content type) list every runnable job's
parameters as optional properties, so that clients generated from the schema,
and Swagger UI's form, take them as fields; ``additionalProperties`` lets a
client send any other parameter by its REST name. There a parameter's default
is said in its description, not given as ``default``: one request model
serves every job, a generated client would send each default to every job, and
a job refuses parameters it does not take. The request models' descriptions
name each job's component, and the JSON request has an example per job
(Swagger UI's example menu). ``GET /api/endpoints/`` gives the same facts as data.
"""
import json

from django.db import DatabaseError

TYPES = {"string": "string", "int": "integer", "float": "number", "bool": "boolean", "choice": "string"}
FURTHER = "A parameter of the job, by its REST name (<task>_<alias>); the Job_<name> components list each job's."
# Any further field is one value: the server takes no lists, objects or nulls for a parameter. A form's fields are text.
SUBMIT_MODELS = {
    "SubmitJSONRequest": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}], "description": FURTHER},
    "SubmitMultipartRequest": {"type": "string", "description": FURTHER},
}
REQUEST_FIELDS = ("job", "submission_name", "email", "input_data")


def typed(kind, value, choices):
    """``value`` if it is a valid JSON Schema default for a parameter of type ``kind``, else None."""
    if value is None:
        return None
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "float":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if not isinstance(value, str) or (choices and value not in choices):
        return None
    return value


def parameter_schema(parameter):
    """The JSON Schema of one parameter's value in its job's component: type, choices, typed default, description."""
    kind = "bool" if parameter.bool_valued else parameter.type
    schema = {"type": TYPES.get(kind, "string")}
    choices = parameter.choice_list if kind == "choice" else []
    if choices:
        schema["enum"] = choices
    default = typed(kind, parameter.typed_default, choices)
    if default is not None:
        schema["default"] = default
    schema["description"] = parameter.description or parameter.label or f"Parameter of task '{parameter.task.name}'."
    return schema


def request_property(schema):
    """A parameter as a request model's optional field: its default said in words, not given (see the module's doc)."""
    field = {key: value for key, value in schema.items() if key != "default"}
    if "default" in schema:
        field["description"] = f"{schema['description']} Default: {json.dumps(schema['default'])}."
    return field


def example_value(parameter):
    """A value of ``parameter`` for a request example: its default, else its first choice, else a placeholder of its type."""
    kind = "bool" if parameter.bool_valued else parameter.type
    choices = parameter.choice_list if kind == "choice" else []
    default = typed(kind, parameter.typed_default, choices)
    if default is not None:
        return default
    if choices:
        return choices[0]
    return {"bool": False, "int": 1, "float": 1.0}.get(kind, "text")


def job_schema(job):
    """The component ``Job_<name>``: the job's parameters, as the job takes them."""
    properties, required = {}, []
    for parameter in job.parameters():
        if parameter.rest_name in REQUEST_FIELDS:
            continue
        properties[parameter.rest_name] = parameter_schema(parameter)
        if parameter.required and parameter.default == "":
            required.append(parameter.rest_name)
    description = f"Parameters of job '{job.name}', sent as further fields of POST /api/submissions/ with job={job.name}."
    if job.description:
        description += f" {job.description}"
    component = {"type": "object", "description": description, "properties": properties}
    if required:  # OpenAPI 3.0 wants a non-empty list or none
        component["required"] = required
    return component


def job_example(job):
    """A JSON request that submits ``job`` with every parameter it takes, for Swagger UI's example menu."""
    value = {"job": job.name}
    if any(".input" in step.task.in_endings for step in job.steps.all() if step.enabled):
        value["input_data"] = "one line\nanother line\n"
    for parameter in job.parameters():
        if parameter.rest_name not in REQUEST_FIELDS:
            value[parameter.rest_name] = example_value(parameter)
    return {"summary": f"Submit to {job.name}", "description": job.description, "value": value}


def add_job_parameters(result, generator, request, public):
    """Add ``Job_<name>`` for every runnable job, and let both submit models take their parameters.

    The catalogue changes at run time, so this is read from the database each
    time the schema is served.
    """
    from jobs.models import Job

    components = result.setdefault("components", {}).setdefault("schemas", {})
    try:
        jobs = list(Job.accepting().prefetch_related("steps__task__parameters"))
    except DatabaseError:  # schema generation without a database (e.g. `spectacular --file`)
        jobs = []
    names, examples = [], {}
    for job in jobs:
        name = f"Job_{job.name}"
        components[name] = job_schema(job)
        names.append(name)
        examples[job.name] = job_example(job)
    listing = result.get("paths", {}).get("/api/submissions/", {})
    for parameter in listing.get("get", {}).get("parameters", []):
        if parameter["name"] == "status" and "SubmissionStatusEnum" in components:  # the statuses the documents use, by name
            parameter["schema"]["items"] = {"$ref": "#/components/schemas/SubmissionStatusEnum"}
    content = listing.get("post", {}).get("requestBody", {}).get("content", {})
    if examples and "application/json" in content:
        content["application/json"]["examples"] = examples
    shapes = "; ".join(
        f"{job.name}: {', '.join(components[f'Job_{job.name}']['properties']) or 'none'} (schema Job_{job.name})" for job in jobs
    )
    for model, further in SUBMIT_MODELS.items():
        fields = components.get(model)
        if fields is None:
            continue
        properties = fields.setdefault("properties", {})
        for name in names:
            for key, schema in components[name]["properties"].items():
                properties.setdefault(key, request_property(schema))
        if model == "SubmitMultipartRequest":
            # Swagger UI fills each field with a sample ("string", 0) and sends every filled field; an empty
            # example leaves a field empty, so only what the user types is sent (a job refuses others' parameters).
            for key, schema in properties.items():
                if key == "job":
                    if jobs:
                        schema["example"] = jobs[0].name
                elif schema.get("format") != "binary":
                    schema["example"] = ""
        if shapes:
            fields["description"] = f"{fields.get('description', '')} Each job's parameters: {shapes}.".strip()
        fields["additionalProperties"] = further
    return result
