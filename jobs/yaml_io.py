"""Load and dump the catalogue as YAML-shaped data.

A file is the whole truth about what it names: loading upserts queue types,
backends, tasks and jobs by name, and replaces their parameters, environment,
configurations, steps, validators and promises with what the file says.
Objects the file does not name are left alone.

The rules are the models' own (``full_clean()``, ``Task.check_parameters()``,
``Job.check_steps()``, ``Job.subjob_problems()``), so admin and YAML accept the same things. This module
checks shapes and types, and points every error at the field it is about:
``tasks[2].parameters[0].rest_alias: required``.
"""
import json
from dataclasses import dataclass, field

import yaml
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction

from . import dag
from .models import Backend, Configuration, Environment, Job, JobPromise, Parameter, QueueType, Step, Task, Validator, broken_parents, jobs_running

__all__ = ["CatalogueError", "LoadSummary", "dump_catalogue", "dump_text", "load_catalogue", "load_text"]


class CatalogueError(ValueError):
    """A catalogue file is wrong; ``path`` names the bad field, e.g. ``tasks[0].timeout``."""

    def __init__(self, path, message):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass
class LoadSummary:
    """How many objects of each section a load touched."""

    counts: dict = field(default_factory=lambda: {"queue_types": 0, "backends": 0, "tasks": 0, "jobs": 0})
    created: int = 0
    updated: int = 0

    def add(self, section, created):
        self.counts[section] += 1
        if created:
            self.created += 1
        else:
            self.updated += 1

    def describe(self):
        """Return e.g. ``"1 queue type, 2 backends, 5 tasks, 3 jobs"``."""
        nouns = {"queue_types": "queue type", "backends": "backend", "tasks": "task", "jobs": "job"}
        return ", ".join(f"{count} {nouns[section]}{'' if count == 1 else 's'}" for section, count in self.counts.items())

    def __str__(self):
        return f"{self.describe()} ({self.created} created, {self.updated} updated)"


# --- Reading: shapes and types, no database ---------------------------------------------------


def _kind_of(value):
    names = {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number", float: "a number", type(None): "nothing"}
    return names.get(type(value), f"a {type(value).__name__}")


def _text(value, path):
    """Return a scalar as text; YAML reads ``10`` and ``true`` as numbers and booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise CatalogueError(path, f"must be text, got {_kind_of(value)}")


def _flag(value, path):
    if not isinstance(value, bool):
        raise CatalogueError(path, f"must be true or false, got {value!r}")
    return value


def _integer(minimum, wording):
    """Return a reader for whole numbers of at least ``minimum`` (None: any)."""

    def read(value, path):
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str):
            try:
                number = int(value)
            except ValueError:
                pass
        if number is None or (minimum is not None and number < minimum):
            raise CatalogueError(path, f"must be {wording}, got {value!r}")
        return number

    return read


def _list(read_item):
    """Return a reader for a list whose items ``read_item`` reads."""

    def read(value, path):
        if not isinstance(value, list):
            raise CatalogueError(path, f"must be a list, got {_kind_of(value)}")
        return [read_item(item, f"{path}[{index}]") for index, item in enumerate(value)]

    return read


def _entry(readers, required=()):
    """Return a reader for a mapping with the fields ``readers`` knows; a null value means omitted."""

    def read(value, path):
        if not isinstance(value, dict):
            raise CatalogueError(path, f"must be a mapping, got {_kind_of(value)}")
        for key in value:
            if key not in readers:
                raise CatalogueError(f"{path}.{key}", "unknown field")
        for key in required:
            if value.get(key) is None:
                raise CatalogueError(f"{path}.{key}", "required")
        return {key: readers[key](item, f"{path}.{key}") for key, item in value.items() if item is not None}

    return read


def _choices(value, path):
    """Return choices given as a list or a comma-separated string, stored comma-separated."""
    items = value.split(",") if isinstance(value, str) else _list(_text)(value, path)
    for index, item in enumerate(items):
        if not isinstance(value, str) and "," in item:
            raise CatalogueError(f"{path}[{index}]", f"a choice cannot contain a comma, got {item!r}")
    return ", ".join(item.strip() for item in items if item.strip())


def _environment(value, path):
    if not isinstance(value, dict):
        raise CatalogueError(path, f"must be a mapping of NAME: value, got {_kind_of(value)}")
    return {str(name): "" if item is None else _text(item, f"{path}.{name}") for name, item in value.items()}


def _mapping(value, path):
    """A free-form mapping stored as JSON (a foreach source, a QC check); the model judges its fields."""
    if not isinstance(value, dict):
        raise CatalogueError(path, f"must be a mapping, got {_kind_of(value)}")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise CatalogueError(path, "must hold only text, numbers, true/false, lists and mappings") from None
    return value


def _step(value, path):
    fields = _read_step_fields(value, path)
    fields.setdefault("id", fields["task"])
    return fields


def _promise(value, path):
    """Return ``{"kind": .., "spec": {other fields}}``; the promise parser judges the fields."""
    if not isinstance(value, dict):
        raise CatalogueError(path, f"must be a mapping with a kind, got {_kind_of(value)}")
    if value.get("kind") is None:
        raise CatalogueError(f"{path}.kind", "required")
    spec = {key: item for key, item in value.items() if key != "kind"}
    try:
        # Stored as JSON: YAML dates, sets and self-referencing aliases cannot be.
        json.dumps(spec)
    except (TypeError, ValueError):
        raise CatalogueError(path, "must hold only text, numbers, true/false, lists and mappings") from None
    return {"kind": _text(value["kind"], f"{path}.kind"), "spec": spec}


_read_parameter = _entry(
    {
        "flag": _text,
        "default": _text,
        "bool_valued": _flag,
        "rest_alias": _text,
        "spacing": _flag,
        "switchless": _flag,
        "type": _text,
        "choices": _choices,
        "required": _flag,
        "allow_dash": _flag,
        "label": _text,
        "description": _text,
        "aa_rest_name": _text,
    },
    required=("rest_alias",),
)
_read_configuration = _entry({"kind": _text, "name": _text, "version": _text}, required=("name",))
_read_step_fields = _entry(
    {"id": _text, "task": _text, "ordering": _integer(None, "an integer"), "after": _list(_text), "enabled": _flag, "when": _text, "foreach": _mapping, "params": _mapping},
    required=("task",),
)

READERS = {
    "queue_types": _entry({"name": _text, "execution_behaviour": _text}, required=("name",)),
    "backends": _entry({"name": _text, "queue_type": _text, "root_path": _text, "options": _mapping}, required=("name", "queue_type")),
    "tasks": _entry(
        {
            "name": _text,
            "backend": _text,
            "description": _text,
            "in_glob": _text,
            "out_glob": _text,
            "stdout_glob": _text,
            "executable": _text,
            "parameters": _list(_read_parameter),
            "environment": _environment,
            "configurations": _list(_read_configuration),
            "incomplete_outputs_behaviour": _text,
            "custom_exit_status": _text,
            "custom_exit_behaviour": _text,
            "dynamic": _flag,
            "timeout": _integer(1, "a positive integer"),
            "retries": _integer(0, "a whole number, 0 or more"),
            "cache": _flag,
            "input_prompt": _text,
            "input_choices": _list(_text),
            "qc": _mapping,
            "resources": _mapping,
            "image": _text,
            "container_options": _mapping,
        },
        required=("name", "backend", "executable"),
    ),
    "jobs": _entry(
        {
            "name": _text,
            "description": _text,
            "runnable": _flag,
            "login_required": _flag,
            "compat": _text,
            "aa_name": _text,
            "validators": _list(_text),
            "steps": _list(_step),
            "promises": _list(_promise),
        },
        required=("name",),
    ),
}


def _read(data):
    """Check the shape and types of a whole file; return ``{section: [fields, ..]}``."""
    if not isinstance(data, dict):
        raise CatalogueError("catalogue", f"must be a mapping of {', '.join(READERS)}, got {_kind_of(data)}")
    for key in data:
        if key not in READERS:
            raise CatalogueError(str(key), f"unknown section; expected {', '.join(READERS)}")
    sections = {}
    for section, read_entry in READERS.items():
        value = data.get(section)
        sections[section] = [] if value is None else _list(read_entry)(value, section)
        _check_unique_names(sections[section], section)
    return sections


def _check_unique_names(entries, section):
    # A second entry would silently overwrite the first one's upsert.
    first = {}
    for index, fields in enumerate(entries):
        earlier = first.setdefault(fields["name"], index)
        if earlier != index:
            raise CatalogueError(f"{section}[{index}].name", f"'{fields['name']}' is already defined by {section}[{earlier}]")


# --- Writing: upsert, with the models' rules ---------------------------------------------------


def _message(problem, obj, name, where):
    """Return one Django validation message, reworded where Django's wording is vague."""
    if problem.code == "invalid_choice":
        choices = ", ".join(str(value) for value, _ in type(obj)._meta.get_field(name).choices)
        return f"must be one of {choices}; got {problem.params['value']!r}"
    if problem.code == "blank":
        return "must not be empty"
    if problem.code == "unique_together":
        return f"duplicate {where or name} {getattr(obj, name)!r}"
    return " ".join(problem.messages)


def _translate(error, obj, path, renames):
    """Return a CatalogueError for the first field of a Django ValidationError."""
    errors = error.error_dict if hasattr(error, "error_dict") else {NON_FIELD_ERRORS: error.error_list}
    name, problems = next(iter(errors.items()))
    if problems[0].code == "unique_together":
        # Django files a clash of (task, rest_alias) under no field; point at the field that clashes.
        name = problems[0].params["unique_check"][-1]
    where = renames.get(name, name)
    message = "; ".join(_message(problem, obj, name, where) for problem in problems)
    return CatalogueError(path if where in ("", NON_FIELD_ERRORS) else f"{path}.{where}", message)


def _check(check, obj, path, renames=None):
    """Run ``check`` (``obj.full_clean`` or a model check), pointing its errors at ``path``."""
    try:
        check()
    except ValidationError as error:
        raise _translate(error, obj, path, renames or {}) from None


def _save(obj, path, renames=None):
    _check(obj.full_clean, obj, path, renames)
    obj.save()


def _assign(obj, fields, names):
    """Set ``names`` from ``fields``; an omitted field takes the model's default."""
    for name in names:
        setattr(obj, name, fields[name] if name in fields else obj._meta.get_field(name).get_default())


def _upsert(model, name):
    """Return ``(object, created)``: the saved object called ``name``, or a new unsaved one."""
    obj = model.objects.filter(name=name).first()
    return (obj, False) if obj else (model(name=name), True)


def _find(model, name, path, noun):
    obj = model.objects.filter(name=name).first()
    if obj is None:
        raise CatalogueError(path, f"unknown {noun} '{name}'")
    return obj


def _write_queue_type(fields, path):
    queue_type, created = _upsert(QueueType, fields["name"])
    _assign(queue_type, fields, ["execution_behaviour"])
    _save(queue_type, path)
    return created


def _write_backend(fields, path):
    backend, created = _upsert(Backend, fields["name"])
    backend.queue_type = _find(QueueType, fields["queue_type"], f"{path}.queue_type", "queue type")
    _assign(backend, fields, ["root_path", "options"])
    _save(backend, path)
    return created


# Task fields written before and after its child lists, in the order a dump shows them.
TASK_TEXT_FIELDS = ["description", "in_glob", "out_glob", "stdout_glob", "executable"]
TASK_BEHAVIOUR_FIELDS = [
    "incomplete_outputs_behaviour", "custom_exit_status", "custom_exit_behaviour", "dynamic", "timeout", "retries", "cache", "input_prompt", "input_choices",
    "qc", "resources", "image", "container_options",
]
TASK_FIELDS = TASK_TEXT_FIELDS + TASK_BEHAVIOUR_FIELDS
PARAMETER_FIELDS = ["flag", "default", "bool_valued", "rest_alias", "spacing", "switchless", "type", "choices", "required", "allow_dash", "label", "description"]


def _write_task(fields, path):
    task, created = _upsert(Task, fields["name"])
    task.backend = _find(Backend, fields["backend"], f"{path}.backend", "backend")
    _assign(task, fields, TASK_FIELDS)
    _save(task, path)
    _write_parameters(task, fields.get("parameters", []), f"{path}.parameters")
    _write_environment(task, fields.get("environment", {}), f"{path}.environment")
    _write_configurations(task, fields.get("configurations", []), f"{path}.configurations")
    _check(task.check_parameters, task, path)
    return created


def _write_parameters(task, items, path):
    task.parameters.all().delete()
    for index, item in enumerate(items):
        parameter = Parameter(task=task, position=index)
        _assign(parameter, item, PARAMETER_FIELDS + ["aa_rest_name"])
        _save(parameter, f"{path}[{index}]")


def _write_environment(task, variables, path):
    task.environment.all().delete()
    for name, value in variables.items():
        _save(Environment(task=task, name=name, value=value), f"{path}.{name}", {"name": "", "value": ""})


def _write_configurations(task, items, path):
    task.configurations.all().delete()
    for index, item in enumerate(items):
        configuration = Configuration(task=task)
        _assign(configuration, item, ["kind", "name", "version"])
        _save(configuration, f"{path}[{index}]")


def _write_job(fields, path):
    job, created = _upsert(Job, fields["name"])
    _assign(job, fields, ["description", "runnable", "login_required", "compat", "aa_name"])
    _save(job, path)
    _write_steps(job, fields.get("steps", []), f"{path}.steps")
    _check(job.check_steps, job, path)
    _write_validators(job, fields.get("validators", []), f"{path}.validators")
    _write_promises(job, fields.get("promises", []), f"{path}.promises")
    promises = [{"kind": item["kind"], **item["spec"]} for item in fields.get("promises", [])]
    problems = job.promise_problems(promises, [item["id"] for item in fields.get("steps", [])])
    if problems:
        index, message = problems[0]
        raise CatalogueError(f"{path}.promises[{index}]", message)
    return created


def _write_validators(job, names, path):
    job.validators.all().delete()
    for index, name in enumerate(names):
        _save(Validator(job=job, validation_type=name), f"{path}[{index}]", {"validation_type": ""})


def _write_promises(job, items, path):
    job.promises.all().delete()
    for index, item in enumerate(items):
        _save(JobPromise(job=job, kind=item["kind"], spec=item["spec"]), f"{path}[{index}]", {"spec": ""})


STEP_FIELDS = ["ordering", "after", "enabled", "when", "foreach", "params"]


def _write_steps(job, steps, path):
    """Make the job's steps those in ``steps``.

    Steps are matched by id rather than recreated, so nodes of earlier
    submissions keep pointing at the step they ran.
    """
    _check_step_graph(steps, path)
    job.steps.exclude(key__in=[item["id"] for item in steps]).delete()
    existing = {step.key: step for step in job.steps.all()}
    for index, item in enumerate(steps):
        step = existing.get(item["id"]) or Step(job=job, key=item["id"])
        step.task = _find(Task, item["task"], f"{path}[{index}].task", "task")
        _assign(step, item, STEP_FIELDS)
        _save(step, f"{path}[{index}]", {"key": "id"})


def _check_step_graph(steps, path):
    """Check the steps with the job's own graph rules, before any is saved."""
    specs = [dag.StepSpec(item["id"], item.get("ordering", 0), tuple(item.get("after", ()))) for item in steps]
    try:
        dag.check_steps(specs)
    except dag.StepGraphError as error:
        raise CatalogueError(_locate(specs, error, path), str(error)) from None


def _locate(specs, error, path):
    """Return the path of the step a graph error is about; the step list itself for a cycle."""
    keys = [spec.key for spec in specs]
    for index, spec in enumerate(specs):
        if error.field == "key" and (not spec.key or spec.key in keys[:index]):
            return f"{path}[{index}].id"
        if error.field == "after" and error.cycle is None and any(key == spec.key or key not in keys for key in spec.after):
            return f"{path}[{index}].after"
    return path


WRITERS = {"queue_types": _write_queue_type, "backends": _write_backend, "tasks": _write_task, "jobs": _write_job}


def load_catalogue(data):
    """Upsert the queue types, backends, tasks and jobs in ``data``, all or nothing.

    References (a backend's queue type, a task's backend, a step's task) may
    name objects already saved or defined earlier in the same data.

    Raises:
        CatalogueError: the first problem, naming the path of the bad field.
    """
    sections = _read(data)
    summary = LoadSummary()
    with transaction.atomic():
        for section, entries in sections.items():
            for index, fields in enumerate(entries):
                summary.add(section, WRITERS[section](fields, f"{section}[{index}]"))
        _check_subjobs(sections["jobs"])
        _check_parents(sections)
    return summary


def _check_subjobs(entries):
    """Check every loaded job's sub-job steps once all are written: a child may be defined after its parent."""
    for index, fields in enumerate(entries):
        job = Job.objects.get(name=fields["name"])
        problems = job.subjob_problems()
        if problems:
            key, message = problems[0]
            at = next(number for number, item in enumerate(fields.get("steps", [])) if item["id"] == key)
            raise CatalogueError(f"jobs[{index}].steps[{at}].params", message)


def _check_parents(sections):
    """Refuse a change to a child job (its steps, or its tasks' parameters) that leaves a parent job unable to run it."""
    changed = [(f"jobs[{index}]", [Job.objects.get(name=fields["name"])]) for index, fields in enumerate(sections["jobs"])]
    for index, fields in enumerate(sections["tasks"]):
        changed.append((f"tasks[{index}]", jobs_running(Task.objects.filter(name=fields["name"]))))
    for path, jobs in changed:
        for parent, key, message in broken_parents(jobs):
            raise CatalogueError(path, f"job '{parent.name}' would be left unable to run: {message}; load '{parent.name}' with that step changed too")


class _Loader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, which YAML would otherwise let the last one win."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            # Keys merged in with "<<" may legitimately be overridden, so only written keys count.
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key_node.value}'", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def load_text(text):
    """Parse YAML ``text`` and load it; an empty document loads nothing.

    Raises:
        CatalogueError: a syntax error (path ``line N, column M``) or a bad catalogue.
    """
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 -- _Loader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise CatalogueError(where, getattr(error, "problem", None) or str(error)) from None
    return load_catalogue({} if data is None else data)


# --- Dumping -----------------------------------------------------------------------------------


def _selection(job_names):
    """Return the jobs named (all when none are) and the tasks, backends and queue types they use."""
    if not job_names:
        return Job.objects.all(), Task.objects.all(), Backend.objects.all(), QueueType.objects.all()
    jobs = list(Job.objects.filter(name__in=job_names))
    missing = [name for name in dict.fromkeys(job_names) if name not in {job.name for job in jobs}]
    if missing:
        raise CatalogueError("jobs", f"no job named {', '.join(repr(name) for name in missing)}")
    # A sub-job task names the job it runs; that job (and what it uses) belongs in the dump too.
    while True:
        named = set(Task.objects.filter(steps__job__in=jobs, backend__queue_type__execution_behaviour="job").values_list("executable", flat=True))
        more = list(Job.objects.filter(name__in={name.strip() for name in named}).exclude(pk__in=[job.pk for job in jobs]))
        if not more:
            break
        jobs.extend(more)
    # A dynamic job adds nodes of the tasks its only_tasks promise allows, not just its steps' tasks.
    promised = {name for job in jobs for promise in job.promises.filter(kind="only_tasks") for name in promise.spec.get("tasks", [])}
    tasks = Task.objects.filter(pk__in=Step.objects.filter(job__in=jobs).values("task")) | Task.objects.filter(name__in=promised)
    backends = Backend.objects.filter(pk__in=tasks.values("backend"))
    return jobs, tasks, backends, QueueType.objects.filter(pk__in=backends.values("queue_type"))


def _dump_task(task):
    fields = {"name": task.name, "backend": task.backend.name}
    fields.update((name, getattr(task, name)) for name in TASK_TEXT_FIELDS)
    fields["parameters"] = [_dump_parameter(parameter) for parameter in task.parameters.all()]
    fields["environment"] = {variable.name: variable.value for variable in task.environment.all()}
    fields["configurations"] = [{"kind": c.kind, "name": c.name, "version": c.version} for c in task.configurations.all()]
    fields.update((name, getattr(task, name)) for name in TASK_BEHAVIOUR_FIELDS)
    return fields


def _dump_parameter(parameter):
    fields = {"rest_alias": parameter.rest_alias}
    fields.update((name, getattr(parameter, name)) for name in PARAMETER_FIELDS if name != "rest_alias")
    fields["choices"] = parameter.choice_list
    if parameter.aa_rest_name:
        fields["aa_rest_name"] = parameter.aa_rest_name
    return fields


def _dump_job(job):
    return {
        "name": job.name,
        "description": job.description,
        "runnable": job.runnable,
        "login_required": job.login_required,
        **({"compat": job.compat} if job.compat else {}),
        **({"aa_name": job.aa_name} if job.aa_name else {}),
        "validators": [validator.validation_type for validator in job.validators.order_by("id")],
        "steps": [
            {
                "id": step.key, "task": step.task.name, "ordering": step.ordering, "after": list(step.after), "enabled": step.enabled,
                "when": step.when, "foreach": step.foreach, "params": step.params,
            }
            for step in job.steps.select_related("task")
        ],
        "promises": [promise.as_dict() for promise in job.promises.all()],
    }


def dump_catalogue(job_names=None):
    """Return the catalogue as plain data that ``load_catalogue`` loads back identically.

    With ``job_names``, only those jobs and the tasks, backends and queue types they use.

    Raises:
        CatalogueError: a name is not a job's.
    """
    jobs, tasks, backends, queue_types = _selection(job_names)
    tasks = tasks.select_related("backend").prefetch_related("parameters", "environment", "configurations")
    backends = backends.select_related("queue_type")
    return {
        "queue_types": [{"name": q.name, "execution_behaviour": q.execution_behaviour} for q in queue_types],
        "backends": [{"name": b.name, "queue_type": b.queue_type.name, "root_path": b.root_path, "options": b.options} for b in backends],
        "tasks": [_dump_task(task) for task in tasks],
        "jobs": [_dump_job(job) for job in sorted(jobs, key=lambda job: job.name)],
    }


class _Dumper(yaml.SafeDumper):
    """Indent lists under their key, and write multi-line text as literal ``|`` blocks."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def _represent_text(dumper, text):
    # PyYAML falls back to a quoted style by itself when a block cannot hold the text exactly.
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _represent_text)


def dump_text(job_names=None):
    """Return ``dump_catalogue(job_names)`` as readable YAML."""
    return yaml.dump(dump_catalogue(job_names), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
