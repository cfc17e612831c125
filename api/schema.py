"""OpenAPI post-processing: show each runnable job's parameters to clients."""


def add_job_parameters(result, generator, request, public):
    """Describe every runnable job's parameters as a schema component, ``Job_<name>``.

    The catalogue changes at run time, so this is read from the database each
    time the schema is served.
    """
    from django.db import DatabaseError

    from jobs.models import Job

    components = result.setdefault("components", {}).setdefault("schemas", {})
    types = {"string": "string", "int": "integer", "float": "number", "bool": "boolean", "choice": "string"}
    try:
        jobs = list(Job.accepting())
    except DatabaseError:  # schema generation without a database (e.g. `spectacular --file`)
        return result
    for job in jobs:
        properties = {}
        for parameter in job.parameters():
            kind = "bool" if parameter.bool_valued else parameter.type
            schema = {"type": types[kind], "description": parameter.description}
            if parameter.choice_list:
                schema["enum"] = parameter.choice_list
            if parameter.typed_default is not None:
                schema["default"] = parameter.typed_default
            properties[parameter.rest_name] = schema
        components[f"Job_{job.name}"] = {
            "type": "object",
            "description": f"Parameters of job '{job.name}', sent as extra fields of POST /api/submissions/. {job.description}".strip(),
            "properties": properties,
            "required": [p.rest_name for p in job.parameters() if p.required and p.default == ""],
        }
    return result
