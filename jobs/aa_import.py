"""Import an Analytics Automated (A_A) configuration dump into the catalogue.

A_A keeps its configuration in Django models of its own (``analytics_automated.
queuetype``, ``backend``, ``task``, ``parameter``, ...), and administrators move
it with ``manage.py dumpdata``: a JSON or YAML list of
``{"model": ..., "pk": ..., "fields": {...}}`` entries. This module reads such
a dump, from A_A's current models or from its older ones (a backend's
``server_type``, ``$INPUT``/``$OUTPUT`` and parameters written after the
program's name), and turns it into Sluice's own catalogue data, which
``yaml_io.load_catalogue`` then loads: every rule of admin and ``loadjobs``
applies, in one transaction, and loading the same dump again changes nothing.

What cannot be carried faithfully is never changed in meaning quietly: it is
listed in the report, and a job that would run a command whose meaning A_A and
Sluice read differently is imported as not runnable. Users, permissions,
sessions, submissions and backend logins are not catalogue and are never
imported (a BackendUser's password is not even copied into the report).
"""
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import yaml
from django.db import transaction

from . import aa_commands, templating
from . import params as param_types
from .yaml_io import CatalogueError, load_catalogue

__all__ = ["ImportProblem", "Report", "import_dumps", "read_dump"]

APP = "analytics_automated"
CATALOGUE_MODELS = ("queuetype", "backend", "task", "parameter", "environment", "configuration", "job", "step", "validator", "validatortypes")
NAME_LIMIT = 64
NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
ALIAS_CHARS = re.compile(r"[^A-Za-z0-9_]+")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# A_A's QueueType.execution_behaviour and its older Backend.server_type, by number.
BEHAVIOURS = {1: ("localhost", "localhost"), 2: ("GridEngine", "slurm"), 3: ("R", "r"), 4: ("Python", "python")}
SERVER_TYPES = {1: ("localhost", "localhost", "localhost"), 2: ("GridEngine", "gridengine", "slurm"), 3: ("RServe", "rserve", "r")}
# A_A's Task.COMPLETION_CHOICES.
COMPLETIONS = {0: "continue", 1: "terminate", 3: "fail"}
# A_A's Configuration.CONFIGURATION_CHOICES.
CONFIGURATION_KINDS = {0: "software", 1: "dataset"}
# A_A's validators are functions named by ValidatorTypes.name; pdb_file is Sluice's pdb.
# A_A's seq and pdb_file keep their own rules (jobs/validators.py, aa_seq and aa_pdb_file).
VALIDATORS = {"none": "none", "seq": "aa_seq", "pdb_file": "aa_pdb_file", "png": "png", "gif": "gif", "jpeg": "jpeg"}



class ImportProblem(ValueError):
    """The dump cannot be imported; the message names the entry (``entry 12 (analytics_automated.step pk=3): ...``)."""


@dataclass
class Entry:
    """One fixture entry, with where it came from."""

    source: str
    number: int  # counted from 1 within its file
    model: str
    pk: object
    fields: dict

    def where(self):
        return f"{self.source}: entry {self.number} ({self.model} pk={self.pk})"

    @property
    def kind(self):
        return self.model.split(".", 1)[1]


@dataclass
class Report:
    """What an import made, mapped, could not carry and ignored."""

    sources: list = field(default_factory=list)
    dry_run: bool = False
    made: str = ""
    mapped: list = field(default_factory=list)
    not_carried: list = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)

    def render(self):
        lines = [f"Analytics Automated import of {', '.join(self.sources)}" + (" (dry run: nothing was changed)" if self.dry_run else "")]
        lines.append(f"{'Would make' if self.dry_run else 'Made'}: {self.made}")
        lines.append("Mapped:" if self.mapped else "Mapped: nothing needed mapping")
        lines.extend(f"  - {line}" for line in self.mapped)
        lines.append("Not carried:" if self.not_carried else "Not carried: nothing")
        lines.extend(f"  - {line}" for line in self.not_carried)
        if self.ignored:
            lines.append("Ignored (not catalogue):")
            for model, count in sorted(self.ignored.items()):
                lines.append(f"  - {count} {model}" + _IGNORED_WHY.get(model, ""))
        return "\n".join(lines) + "\n"


_IGNORED_WHY = {
    f"{APP}.backenduser": " (backend logins; their passwords are never imported)",
    "auth.user": " (users and their password hashes are not imported; create users in Sluice)",
    "auth.permission": " (Sluice has its own permissions)",
    "auth.group": " (groups are not imported)",
    "sessions.session": " (sessions are not imported)",
    f"{APP}.submission": " (submissions are run history, not configuration)",
    f"{APP}.result": " (results are run history, not configuration)",
    f"{APP}.message": " (messages are run history, not configuration)",
    f"{APP}.batch": " (batches are run history, not configuration)",
}


# --- Reading ---------------------------------------------------------------------------------------


def read_dump(text, source):
    """Return the entries of one dump (JSON or YAML), checked for shape.

    Raises:
        ImportProblem: the text is not a list of ``{"model", "fields"}`` mappings.
    """
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
            raise ImportProblem(f"{source}: {where}: {getattr(error, 'problem', None) or error}") from None
    if data is None:
        data = []
    if not isinstance(data, list):
        raise ImportProblem(f"{source}: an A_A dump is a list of entries like {{model: analytics_automated.task, pk: 1, fields: {{...}}}}, got {type(data).__name__}")
    entries = []
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("model"), str) or not isinstance(item.get("fields", {}), dict):
            raise ImportProblem(f"{source}: entry {number}: must be a mapping with 'model' (text) and 'fields' (a mapping)")
        entries.append(Entry(source, number, item["model"].lower(), item.get("pk"), item.get("fields") or {}))
    return entries


# --- Small readers ---------------------------------------------------------------------------------


def _text(value):
    """A_A's nullable text as Sluice text; None is empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _bool(entry, name, default):
    value = entry.fields.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ImportProblem(f"{entry.where()}: {name} must be true or false, got {value!r}")
    return value


def _number(entry, name, choices, default=None):
    value = entry.fields.get(name, default)
    if value is None:
        return None
    if value not in choices:
        raise ImportProblem(f"{entry.where()}: {name} {value!r} is not one A_A defines ({', '.join(str(key) for key in choices)})")
    return value


class Names:
    """Deterministic valid names, unique per kind: the A_A name where it is valid, else a cleaned one.

    Names that are valid as they are keep them, whatever their order: ``a b`` becomes
    ``a_b_2`` when another entry is called ``a_b``.
    """

    VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

    def __init__(self, pattern, fallback, entries=()):
        self.pattern, self.fallback = pattern, fallback
        self.kept = {raw for raw in (_text(entry.fields.get("name")) for entry in entries) if self.VALID.match(raw) and len(raw) <= NAME_LIMIT}
        self.taken = set(self.kept)

    def make(self, raw, pk):
        raw = _text(raw)
        if raw in self.kept:
            self.kept.discard(raw)
            return raw
        name = self.pattern.sub("_", raw.strip()).strip("_.-")[:NAME_LIMIT] or f"{self.fallback}_{pk}"
        if not name[0].isalnum():
            name = f"{self.fallback}_{name}"[:NAME_LIMIT]
        base, number = name, 2
        while name in self.taken:
            suffix = f"_{number}"
            name, number = base[: NAME_LIMIT - len(suffix)] + suffix, number + 1
        self.taken.add(name)
        return name


# --- Converting ------------------------------------------------------------------------------------


class Converter:
    """Turn A_A entries into catalogue data for ``load_catalogue``, recording what it does in ``report``."""

    def __init__(self, entries, report):
        self.report = report
        self.by_kind = defaultdict(dict)
        self.origins = {}  # catalogue path -> Entry, for errors
        self.uncarried = {}  # Sluice task name -> why its executable could not be carried
        for entry in entries:
            app = entry.model.split(".", 1)[0]
            if app != APP or entry.kind not in CATALOGUE_MODELS:
                report.ignored[entry.model] += 1
                continue
            if entry.pk is None:
                raise ImportProblem(f"{entry.where()}: has no pk; dump with 'manage.py dumpdata' without --natural-primary")
            if entry.pk in self.by_kind[entry.kind]:
                raise ImportProblem(f"{entry.where()}: pk {entry.pk} is also {self.by_kind[entry.kind][entry.pk].where()}")
            self.by_kind[entry.kind][entry.pk] = entry
        # A file from an older A_A (backends with a server_type) interpolates commands the older way.
        self.legacy_sources = {entry.source for entry in self.by_kind["backend"].values() if "server_type" in entry.fields}

    def entries(self, kind):
        return sorted(self.by_kind[kind].values(), key=lambda entry: (str(type(entry.pk)), entry.pk))

    def refer(self, entry, name, kind, required=True):
        """Return the entry that ``entry.fields[name]`` points at (a pk of ``kind``), or None when it is null."""
        pk = entry.fields.get(name)
        if pk is None:
            if required:
                raise ImportProblem(f"{entry.where()}: {name} is empty; A_A cannot run it either: set it in A_A and dump again")
            return None
        target = self.by_kind[kind].get(pk)
        if target is None:
            raise ImportProblem(f"{entry.where()}: {name} {pk!r} is not an {APP}.{kind} entry of the dump; dump the {kind} entries too")
        return target

    def unknown_fields(self, entry, known):
        for name in sorted(set(entry.fields) - set(known)):
            if entry.fields[name] not in (None, "", [], {}):
                self.report.not_carried.append(f"{entry.kind} {entry.pk}: field '{name}' ({entry.fields[name]!r}) has no Sluice equivalent")

    def convert(self):
        data = {"queue_types": [], "backends": [], "tasks": [], "jobs": []}
        queue_types = self.convert_queue_types(data)
        backends = self.convert_backends(data, queue_types)
        tasks = self.convert_tasks(data, backends)
        self.convert_jobs(data, tasks)
        return data

    # Queue types and backends

    def convert_queue_types(self, data):
        names, found = Names(NAME_CHARS, "queue", self.entries("queuetype")), {}
        for entry in self.entries("queuetype"):
            self.unknown_fields(entry, ("name", "execution_behaviour"))
            number = _number(entry, "execution_behaviour", BEHAVIOURS, 1)
            label, behaviour = BEHAVIOURS[number]
            name = names.make(entry.fields.get("name"), entry.pk)
            if name != _text(entry.fields.get("name")):
                self.report.mapped.append(f"queue type {_text(entry.fields.get('name'))!r} (pk {entry.pk}) -> '{name}' (names are letters, digits, '_', '-', '.')")
            if number == 2:
                self.report.mapped.append(
                    f"queue type '{name}': execution behaviour GridEngine -> slurm (A_A submitted through DRMAA to Grid Engine; Sluice submits batch jobs to Slurm)"
                )
            elif number == 3:
                self.report.mapped.append(f"queue type '{name}': execution behaviour R -> r (Rscript)")
            self.origins[f"queue_types[{len(data['queue_types'])}]"] = entry
            data["queue_types"].append({"name": name, "execution_behaviour": behaviour})
            found[entry.pk] = (name, behaviour, label)
        self.queue_type_names = names
        return found

    def convert_backends(self, data, queue_types):
        names, found, synthetic = Names(NAME_CHARS, "backend", self.entries("backend")), {}, {}
        for entry in self.entries("backend"):
            self.unknown_fields(entry, ("name", "queue_type", "server_type", "root_path", "partition", "queue"))
            name = names.make(entry.fields.get("name"), entry.pk)
            if name != _text(entry.fields.get("name")):
                self.report.mapped.append(f"backend {_text(entry.fields.get('name'))!r} (pk {entry.pk}) -> '{name}'")
            if "server_type" in entry.fields and "queue_type" not in entry.fields:
                queue_name, behaviour, label = self.legacy_queue_type(entry, data, synthetic)
                self.report.mapped.append(f"backend '{name}': server_type {entry.fields['server_type']} ({label}) -> queue type '{queue_name}', execution behaviour {behaviour}")
            else:
                target = self.refer(entry, "queue_type", "queuetype")
                queue_name, behaviour, label = queue_types[target.pk]
            options = {}
            if behaviour == "slurm":
                partition = _text(entry.fields.get("partition") or entry.fields.get("queue"))
                if partition:
                    options["partition"] = partition
                    self.report.mapped.append(f"backend '{name}': A_A queue '{partition}' -> Slurm partition (options.partition)")
                else:
                    self.report.mapped.append(f"backend '{name}': GridEngine runs on Slurm; the dump names no queue, so its steps go to Slurm's default partition")
            root = _text(entry.fields.get("root_path"))
            if root and not root.startswith("/"):
                self.report.not_carried.append(f"backend '{name}': root_path {root!r} is not absolute; Sluice uses SLUICE_WORK_DIR")
                root = ""
            self.origins[f"backends[{len(data['backends'])}]"] = entry
            data["backends"].append({"name": name, "queue_type": queue_name, "root_path": root, "options": options})
            found[entry.pk] = {"name": name, "behaviour": behaviour, "root": _text(entry.fields.get("root_path"))}
        return found

    def legacy_queue_type(self, entry, data, synthetic):
        """Older A_A had no queue types: a backend's server_type said how to run. One queue type per server type."""
        number = _number(entry, "server_type", SERVER_TYPES, 1)
        label, wanted, behaviour = SERVER_TYPES[number]
        if number not in synthetic:
            name = self.queue_type_names.make(wanted, entry.pk)
            self.origins[f"queue_types[{len(data['queue_types'])}]"] = entry
            data["queue_types"].append({"name": name, "execution_behaviour": behaviour})
            synthetic[number] = name
            if number == 3:
                self.report.not_carried.append(f"server_type 3 (RServe): Sluice has no Rserve; queue type '{name}' runs R code with Rscript")
        return synthetic[number], behaviour, label

    # Tasks

    def convert_tasks(self, data, backends):
        names, found = Names(NAME_CHARS, "task", self.entries("task")), {}
        children = {kind: defaultdict(list) for kind in ("parameter", "environment", "configuration")}
        for kind, grouped in children.items():
            for entry in self.entries(kind):
                grouped[self.refer(entry, "task", "task").pk].append(entry)
        first_steps = self.first_step_tasks()
        for entry in self.entries("task"):
            self.unknown_fields(entry, (
                "backend", "name", "description", "in_glob", "out_glob", "stdout_glob", "executable",
                "incomplete_outputs_behaviour", "custom_exit_status", "custom_exit_behaviour",
            ))
            aa_name = _text(entry.fields.get("name"))
            name = names.make(aa_name, entry.pk)
            if name != aa_name:
                self.report.mapped.append(f"task {aa_name!r} (pk {entry.pk}) -> '{name}' (task names are letters, digits, '_', '-', '.'; REST names follow)")
            backend = backends[self.refer(entry, "backend", "backend").pk]
            path = f"tasks[{len(data['tasks'])}]"
            self.origins[path] = entry
            task = TaskConversion(self, entry, name, backend, first_steps.get(entry.pk), path)
            data["tasks"].append(task.convert(children["parameter"][entry.pk], children["environment"][entry.pk], children["configuration"][entry.pk]))
            found[entry.pk] = name
        return found

    def first_step_tasks(self):
        """Tasks by pk -> (is a first step somewhere, is a later step somewhere), from the steps' orderings."""
        by_job = defaultdict(list)
        for step in self.entries("step"):
            if step.fields.get("job") is not None and step.fields.get("task") is not None:
                by_job[step.fields["job"]].append(step)
        roles = defaultdict(lambda: [False, False])
        for steps in by_job.values():
            first = min(_ordering(step) for step in steps)
            for step in steps:
                roles[step.fields["task"]][0 if _ordering(step) == first else 1] = True
        return roles

    # Jobs

    def convert_jobs(self, data, tasks):
        names = Names(NAME_CHARS, "job", self.entries("job"))
        steps, validators = defaultdict(list), defaultdict(list)
        for entry in self.entries("step"):
            job = self.refer(entry, "job", "job")
            task = self.refer(entry, "task", "task", required=False)
            self.unknown_fields(entry, ("job", "task", "ordering"))
            if task is None:
                self.report.not_carried.append(f"step {entry.pk} of job pk {job.pk}: it has no task (A_A deleted it), so it is left out")
                continue
            steps[job.pk].append(entry)
        for entry in self.entries("validator"):
            validators[self.refer(entry, "job", "job").pk].append(entry)
        for entry in self.entries("job"):
            self.unknown_fields(entry, ("name", "runnable"))
            aa_name = _text(entry.fields.get("name"))
            name = names.make(aa_name, entry.pk)
            if name != aa_name:
                self.report.mapped.append(f"job {aa_name!r} (pk {entry.pk}) -> '{name}'")
            path = f"jobs[{len(data['jobs'])}]"
            self.origins[path] = entry
            # Every imported job keeps A_A's run-time semantics where Sluice's differ (Job.compat).
            job = {"name": name, "runnable": _bool(entry, "runnable", False), "compat": "aa", "steps": [], "validators": []}
            if name != aa_name:
                job["aa_name"] = aa_name  # A_A's clients still name it so under /analytics_automated/
            keys = set()
            for index, step in enumerate(sorted(steps[entry.pk], key=lambda step: (_ordering(step), str(step.pk)))):
                task = tasks[step.fields["task"]]
                key, number = task, 2
                while key in keys:
                    key, number = f"{task[: NAME_LIMIT - 4]}_{number}", number + 1
                keys.add(key)
                if key != task:
                    self.report.mapped.append(f"job '{name}': a second step of task '{task}' gets the id '{key}'")
                self.origins[f"{path}.steps[{index}]"] = step
                job["steps"].append({"id": key, "task": task, "ordering": _ordering(step)})
                if task in self.uncarried and job["runnable"]:
                    job["runnable"] = False
                    self.report.not_carried.append(
                        f"job '{name}' is imported not runnable: its step '{key}' runs task '{task}', whose command could not be carried ({self.uncarried[task]})"
                    )
            if job["runnable"] and not job["steps"]:
                job["runnable"] = False
                self.report.not_carried.append(f"job '{name}' is imported not runnable: it has no steps (Sluice runs no empty job)")
            for validator in validators[entry.pk]:
                carried = self.validator_name(validator, name)
                if carried:
                    self.origins[f"{path}.validators[{len(job['validators'])}]"] = validator
                    job["validators"].append(carried)
            data["jobs"].append(job)

    def validator_name(self, entry, job_name):
        """The Sluice validator for an A_A one, or None (reported) when Sluice has none."""
        self.unknown_fields(entry, ("job", "validation_type", "re_string"))
        if "re_string" in entry.fields:
            self.report.not_carried.append(
                f"job '{job_name}': validator {entry.pk} (older A_A regular expression {entry.fields.get('re_string')!r}) has no Sluice equivalent"
            )
            return None
        aa_name = _text(self.refer(entry, "validation_type", "validatortypes").fields.get("name"))
        carried = VALIDATORS.get(aa_name)
        if carried is None:
            self.report.not_carried.append(f"job '{job_name}': validator '{aa_name}' has no Sluice equivalent (Sluice has none, seq, pdb, png, gif, jpeg, fasta, json, csv)")
        elif carried != aa_name:
            self.report.mapped.append(f"job '{job_name}': validator '{aa_name}' -> '{carried}'")
        return carried


def _ordering(step):
    value = step.fields.get("ordering", 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ImportProblem(f"{step.where()}: ordering must be a whole number, got {value!r}")
    return value


class TaskConversion:
    """One A_A task, its parameters, environment and configurations, as a Sluice task entry."""

    def __init__(self, converter, entry, name, backend, roles, path):
        self.converter, self.entry, self.name, self.backend, self.path = converter, entry, name, backend, path
        self.report = converter.report
        self.first_only = bool(roles) and roles[0] and not roles[1]
        self.first_and_later = bool(roles) and roles[0] and roles[1]
        self.problems = []
        self.legacy = entry.source in converter.legacy_sources

    def note(self, text):
        self.report.mapped.append(f"task '{self.name}': {text}")

    def convert(self, parameters, environment, configurations):
        fields = self.entry.fields
        in_endings = _endings(fields.get("in_glob"))
        out_endings = _endings(fields.get("out_glob"))
        executable = _text(fields.get("executable"))
        if self.first_only and in_endings and in_endings[0] != ".input":
            executable = self.stage_upload(executable, in_endings)
        elif self.first_and_later and in_endings and in_endings[0] != ".input":
            # Its jobs are compat "aa": a first-stage step gets the upload under its first ending, as A_A's did.
            self.note(f"a first step in one job and a later step in another: its first ending {in_endings[0]} takes the upload where it runs first (compat: aa)")
        stdout = "." + _text(fields.get("stdout_glob")).strip().lstrip(".") if _text(fields.get("stdout_glob")).strip() else ".stdout"
        # A_A always sends stdout to <ID><stdout ending>, but keeps that file only when an out_glob ending gathers it.
        stdout_glob = stdout if stdout in out_endings else ""
        written = _text(fields.get("stdout_glob")).strip()
        if stdout_glob and not written:
            self.note(f"stdout_glob empty -> {stdout} (A_A writes stdout to <ID>.stdout and the out_glob keeps it)")
        elif written and not stdout_glob:
            self.note(f"stdout_glob {written} -> empty (A_A wrote stdout to <ID>{stdout} but kept it only when an out_glob ending gathered it)")
        elif written != stdout_glob:
            self.note(f"stdout_glob {written} -> {stdout} (A_A puts the '.' in front itself)")
        converted_parameters, order = self.convert_parameters(parameters)
        executable = self.translate(executable, order, in_endings, out_endings)
        task = {
            "name": self.name,
            "backend": self.backend["name"],
            "description": _text(fields.get("description")),
            "in_glob": ", ".join(in_endings),
            "out_glob": ", ".join(out_endings),
            "stdout_glob": stdout_glob,
            "executable": executable,
            "parameters": converted_parameters,
            "environment": self.convert_environment(environment),
            "configurations": self.convert_configurations(configurations),
        }
        task.update(self.convert_behaviours())
        if self.problems:
            self.converter.uncarried[self.name] = "; ".join(self.problems)
            for problem in self.problems:
                self.report.not_carried.append(f"task '{self.name}': {problem}")
        return task

    def stage_upload(self, executable, in_endings):
        """A_A wrote the upload to <ID><first in_glob ending> for a first step; Sluice stages it as <ID>.input."""
        ending = in_endings[0]
        in_endings[0] = ".input"
        self.note(f"in_glob {ending} -> .input (a first step: A_A gave it the upload as <ID>{ending}; Sluice stages the upload as <ID>.input)")
        literal = re.compile(r"\$ID" + re.escape(ending) + r"(?![A-Za-z0-9_.+-])")
        if literal.search(executable):
            self.note(f"$ID{ending} -> $I1 (the upload)")
            executable = literal.sub("$I1", executable)
        return executable

    # Parameters

    def convert_parameters(self, entries):
        """Return ``(Sluice parameters in $P order, {A_A role: [$P numbers]})``."""
        entries = sorted(entries, key=lambda entry: (str(type(entry.pk)), entry.pk))
        legacy = self.legacy
        if legacy:
            # Older A_A wrote the bool flags, then the valued options sorted by flag, after the program's name.
            flags = [entry for entry in entries if _bool(entry, "bool_valued", False)]
            options = sorted((entry for entry in entries if not _bool(entry, "bool_valued", False)), key=lambda entry: _text(entry.fields.get("flag")))
            ordered = flags + options
        else:
            # $P1.. count A_A's parameters in pk order, leaving out the one whose flag says VALUE: it is $VALUE.
            values = [entry for entry in entries if "VALUE" in _text(entry.fields.get("flag")) and not _bool(entry, "bool_valued", False)]
            ordered = [entry for entry in entries if entry not in values] + values
        aliases, converted = set(), []
        for index, entry in enumerate(ordered):
            self.converter.origins[f"{self.path}.parameters[{index}]"] = entry
            converted.append(self.convert_parameter(entry, aliases, legacy))
        order = aa_commands.ParameterOrder(
            flags=[number for number, entry in enumerate(ordered, start=1) if _bool(entry, "bool_valued", False)],
            options=[number for number, entry in enumerate(ordered, start=1) if not _bool(entry, "bool_valued", False)],
            value=[number for number, item in enumerate(converted, start=1) if item.get("_value")],
        )
        order.count = len(ordered) - len(order.value)
        for item in converted:
            item.pop("_value", None)
        return converted, order

    def convert_parameter(self, entry, aliases, legacy):
        self.converter.unknown_fields(entry, ("task", "flag", "default", "bool_valued", "rest_alias", "spacing", "switchless"))
        fields = entry.fields
        aa_task = _text(self.entry.fields.get("name"))
        rest = _text(fields.get("rest_alias"))
        # A_A's Parameter.save() stores the alias already prefixed with the task name.
        alias = rest[len(aa_task) + 1:] if rest.startswith(aa_task + "_") and len(rest) > len(aa_task) + 1 else rest
        alias = ALIAS_CHARS.sub("_", alias).strip("_") or f"p{entry.pk}"
        base, number = alias, 2
        while alias in aliases:
            alias, number = f"{base}_{number}", number + 1
        aliases.add(alias)
        if f"{self.name}_{alias}" != rest:
            self.note(f"parameter REST name {rest!r} -> '{self.name}_{alias}' (A_A's clients may still send {rest!r} to /analytics_automated/)")
        flag = _text(fields.get("flag"))
        bool_valued = _bool(entry, "bool_valued", False)
        spacing = _bool(entry, "spacing", True)
        switchless = _bool(entry, "switchless", False)
        default = _text(fields.get("default"))
        item = {"rest_alias": alias, "flag": flag, "bool_valued": bool_valued, "spacing": spacing, "switchless": switchless, "required": True}
        if f"{self.name}_{alias}" != rest:
            item["aa_rest_name"] = rest
        if bool_valued:
            item["type"] = "bool"
            if switchless:
                switchless = item["switchless"] = False
                self.note(f"parameter '{alias}': switchless dropped (A_A ignores it for a bool-valued flag)")
            try:
                param_types.coerce("bool", default, [], allow_dash=True) if default else None
            except param_types.ParameterValueError:
                self.report.not_carried.append(f"task '{self.name}': parameter '{alias}' default {default!r} is not true or false; it has no default")
                default = ""
        elif not legacy and "VALUE" in flag:
            item.update(flag="", spacing=True, switchless=False, _value=True)
            self.note(f"parameter '{alias}' (flag {flag!r}) is A_A's $VALUE: Sluice writes its value where $VALUE stood")
        item["default"] = default
        if default.lstrip().startswith("-") and not bool_valued:
            item["allow_dash"] = True
            self.note(f"parameter '{alias}': allow_dash on, as its default {default!r} begins with '-'")
        return item

    # The command

    def translate(self, executable, order, in_endings, out_endings):
        result = aa_commands.translate(executable, self.backend["behaviour"], self.legacy, order, in_endings, out_endings, self.backend["root"])
        self.problems.extend(result.problems)
        for written, ending in result.gathered:
            self.report.not_carried.append(
                f"task '{self.name}': it writes $ID{written}; A_A kept every file whose name ends in {ending}, "
                f"Sluice keeps <ID>{ending} only (and fails the step without it, as incomplete_outputs_behaviour is {self.incomplete()})"
            )
        if result.text != executable:
            self.note(f"executable {executable!r} -> {result.text!r} ({'; '.join(result.changes)})")
        if self.backend["behaviour"] not in aa_commands.SHELL_BEHAVIOURS and executable.strip():
            self.note(f"{self.backend['behaviour']} code imported unchanged: its jobs are compat: aa, which define A_A's I1.., O1.., P1.. for it")
        return result.text

    # Environment, configurations and behaviours

    def convert_environment(self, entries):
        variables = {}
        for entry in sorted(entries, key=lambda entry: (str(type(entry.pk)), entry.pk)):
            self.converter.unknown_fields(entry, ("task", "env", "value"))
            name = _text(entry.fields.get("env"))
            if not ENV_NAME.match(name):
                self.report.not_carried.append(f"task '{self.name}': environment variable {name!r} is not a valid name (letters, digits, '_')")
                continue
            if name in variables:
                self.report.not_carried.append(f"task '{self.name}': environment variable {name} is set twice; the later value is kept")
            self.converter.origins[f"{self.path}.environment.{name}"] = entry
            variables[name] = _text(entry.fields.get("value"))
        return variables

    def convert_configurations(self, entries):
        carried = []
        for entry in sorted(entries, key=lambda entry: (str(type(entry.pk)), entry.pk)):
            self.converter.unknown_fields(entry, ("task", "type", "name", "parameters", "version"))
            name = _text(entry.fields.get("name"))
            if not name:
                self.report.not_carried.append(f"task '{self.name}': configuration {entry.pk} has no name")
                continue
            kind = _number(entry, "type", {0: 0, 1: 1, 2: 2}, 0)
            if kind not in CONFIGURATION_KINDS:
                self.report.not_carried.append(f"task '{self.name}': configuration '{name}' is of type Misc., which Sluice does not have; recorded as software")
            if _text(entry.fields.get("parameters")):
                self.report.not_carried.append(f"task '{self.name}': configuration '{name}' parameters {_text(entry.fields.get('parameters'))!r} (Sluice records a name and a version)")
            self.converter.origins[f"{self.path}.configurations[{len(carried)}]"] = entry
            carried.append({"kind": CONFIGURATION_KINDS.get(kind, "software"), "name": name, "version": _text(entry.fields.get("version"))})
        return carried

    def incomplete(self):
        return COMPLETIONS.get(self.entry.fields.get("incomplete_outputs_behaviour", 3), "fail")

    def convert_behaviours(self):
        entry = self.entry
        incomplete = _number(entry, "incomplete_outputs_behaviour", COMPLETIONS, 3)
        custom = _number(entry, "custom_exit_behaviour", COMPLETIONS)
        statuses = _text(entry.fields.get("custom_exit_status")).replace(" ", "")
        codes = [code for code in statuses.split(",") if code]
        if any(not code.isdigit() for code in codes):
            raise ImportProblem(f"{entry.where()}: custom_exit_status {statuses!r} is not a list of numbers; A_A fails every run of this task: correct it in A_A and dump again")
        if "0" in [code.lstrip("0") or "0" for code in codes]:
            # A_A documents 0 among the custom statuses as a way to change what success does; only terminate changes it.
            if custom == 1:
                self.problems.append("custom exit status 0 with terminate: A_A ends the job after this step succeeds, which Sluice has no setting for")
            else:
                self.note("custom exit status 0 dropped (A_A treats 0 as success whatever the behaviour, as Sluice does)")
            codes = [code for code in codes if code.lstrip("0")]
        behaviours = {"incomplete_outputs_behaviour": COMPLETIONS[incomplete if incomplete is not None else 3], "custom_exit_status": ", ".join(codes)}
        if codes:
            if custom is None:
                # A_A adds the statuses to the successful ones only for continue and terminate.
                self.note("custom_exit_behaviour empty -> fail (A_A fails on these statuses when no behaviour is set)")
            behaviours["custom_exit_behaviour"] = COMPLETIONS[custom if custom is not None else 3]
        elif custom is not None:
            behaviours["custom_exit_behaviour"] = COMPLETIONS[custom]
        return behaviours


def _endings(glob):
    """A_A's comma-separated endings, with the white space it removes removed."""
    return templating.split_endings("".join(_text(glob).split()))


# --- Importing -------------------------------------------------------------------------------------


class _DryRun(Exception):
    """Raised inside the transaction of a dry run, to undo the load."""


def import_dumps(dumps, dry_run=False):
    """Import ``[(source name, text)]`` A_A dumps together, all or nothing; return the Report.

    With ``dry_run`` the catalogue is loaded and checked in a transaction that
    is then rolled back, so the report says what a real import would do.

    Raises:
        ImportProblem: naming the file and entry at fault.
    """
    report = Report(sources=[source for source, _ in dumps], dry_run=dry_run)
    entries = [entry for source, text in dumps for entry in read_dump(text, source)]
    converter = Converter(entries, report)
    data = converter.convert()
    try:
        with transaction.atomic():
            summary = load_catalogue(data)
            report.made = str(summary)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    except CatalogueError as error:
        raise ImportProblem(f"{_origin(converter.origins, error.path)}: {error}") from None
    return report


def _origin(origins, path):
    """Name the entry a catalogue path came from: the longest known prefix of ``path``."""
    best = None
    for known in origins:
        if (path == known or path.startswith((known + ".", known + "["))) and (best is None or len(known) > len(best)):
            best = known
    return origins[best].where() if best else "the dump"
