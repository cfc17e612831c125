"""The catalogue: queue types, backends, tasks and jobs.

Rules live here, in ``clean()`` and model methods, so that admin, YAML import
and the API enforce the same things with the same messages.
"""
import functools
import operator
import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from . import dag, expressions, mappings, params, promises, quoting, slurm_options, templating, validators
from .containers import container_problems, options_problem
from .resources import resource_problem

NAME = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", "use letters, digits, '_', '-' and '.', starting with a letter or digit")
ENV_NAME = RegexValidator(r"^[A-Za-z_][A-Za-z0-9_]*$", "an environment variable name is letters, digits and '_', not starting with a digit")
ALIAS = RegexValidator(r"^[A-Za-z0-9_]+$", "use letters, digits and '_'")
# Analytics Automated's names (of an imported job, task or parameter) as its clients know them: any printable text.
AA_NAME = RegexValidator(r"^[^\x00-\x1f\x7f,]+$", "use printable characters and no ','")
# An ending is appended to the file-name id; it must never climb out of the working directory.
ENDING = re.compile(r"^[A-Za-z0-9_.+-]+$")


class Behaviour(models.TextChoices):
    """What to do when a step ends in an exceptional way."""

    CONTINUE = "continue", "continue: treat the step as succeeded"
    TERMINATE = "terminate", "terminate: stop the submission, reporting it complete"
    FAIL = "fail", "fail: fail the step and the submission"


class QueueType(models.Model):
    class ExecutionBehaviour(models.TextChoices):
        LOCALHOST = "localhost", "localhost: shell command lines"
        PYTHON = "python", "python: Python code in a separate interpreter"
        R = "r", "r: R code run by Rscript"
        JOB = "job", "job: run another job as a sub-job"
        SLURM = "slurm", "slurm: shell command lines as batch jobs on a Slurm cluster"
        CONTAINER = "container", "container: shell command lines in the task's container image"

    name = models.CharField(max_length=64, unique=True, validators=[NAME], help_text="Names the Dramatiq queues <name>, low_<name> and high_<name>.")
    execution_behaviour = models.CharField(max_length=16, choices=ExecutionBehaviour.choices, default=ExecutionBehaviour.LOCALHOST)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def queue_names(self):
        return [f"low_{self.name}", self.name, f"high_{self.name}"]


class Backend(models.Model):
    name = models.CharField(max_length=64, unique=True, validators=[NAME])
    queue_type = models.ForeignKey(QueueType, on_delete=models.PROTECT, related_name="backends")
    root_path = models.CharField(max_length=1024, blank=True, help_text="Directory under which steps get their working directories; empty means SLUICE_WORK_DIR.")
    options = models.JSONField(
        default=dict, blank=True,
        help_text='Settings for the queue type\'s executor, e.g. for Slurm {"partition": "short", "account": "lab", "sbatch_args": ["--qos=normal"]}.',
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.root_path and not self.root_path.startswith("/"):
            errors["root_path"] = "must be an absolute path"
        if not isinstance(self.options, dict):
            errors["options"] = "must be a mapping of option names to values"
        elif self.queue_type_id and self.queue_type.execution_behaviour == QueueType.ExecutionBehaviour.SLURM:
            problem = slurm_options.options_problem(self.options)
            if problem:
                errors["options"] = problem
        if errors:
            raise ValidationError(errors)


class Task(models.Model):
    name = models.CharField(max_length=64, unique=True, validators=[NAME])
    description = models.TextField(blank=True)
    backend = models.ForeignKey(Backend, on_delete=models.PROTECT, related_name="tasks")
    in_glob = models.CharField(max_length=512, blank=True, help_text="Comma-separated file endings this step reads, found among the results of earlier steps (nearest first); .input is the submitter's upload; *.part gathers every earlier .part file. $I1.. name them.")
    out_glob = models.CharField(max_length=512, blank=True, help_text="Comma-separated file endings gathered as results after the step runs. $O1.. name them.")
    stdout_glob = models.CharField(max_length=64, blank=True, help_text="If set, stdout is captured to <ID><ending> and kept as a result.")
    executable = models.TextField(help_text="Shell line (localhost) or code (python, r). Placeholders: $I1 $O1 $P1 $VALUE $TMP $ID.")
    incomplete_outputs_behaviour = models.CharField(max_length=16, choices=Behaviour.choices, default=Behaviour.FAIL, help_text="What to do when an out_glob file is missing.")
    custom_exit_status = models.CharField(max_length=128, blank=True, help_text="Comma-separated non-zero exit codes that get the custom behaviour instead of failing.")
    custom_exit_behaviour = models.CharField(max_length=16, choices=Behaviour.choices, default=Behaviour.CONTINUE)
    dynamic = models.BooleanField(default=False, help_text="May the step add nodes and edges while it runs.")
    timeout = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)], help_text="Seconds before the step's whole process group is killed; empty means no limit.")
    retries = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)], help_text="How many times a failed step is tried again.")
    cache = models.BooleanField(default=False, help_text="Reuse the results of an earlier run with the same task definition, inputs and parameters.")
    input_prompt = models.CharField(max_length=500, blank=True, help_text="If set, the step runs no process: it waits for a person to answer this prompt (POST .../nodes/KEY/input/).")
    input_choices = models.JSONField(
        default=list, blank=True,
        help_text='The answers a prompt accepts, e.g. ["yes", "no"], shown as buttons; empty means any text.',
    )
    qc = models.JSONField(
        default=dict, blank=True,
        help_text='A quality check on a JSON output, e.g. {"output": ".qc.json", "check": "reads > 1000", "on_fail": "fail"}; on_fail is fail or terminate.',
    )
    resources = models.JSONField(
        default=dict, blank=True,
        help_text='What one run needs, e.g. {"cpus": 2, "memory_mb": 4096, "time_s": 3600, "gpus": 1}: sbatch flags on Slurm, limits in a container.',
    )
    image = models.CharField(max_length=512, blank=True, help_text="The container image a step of a container queue type runs in, e.g. localhost/tools:1.2.")
    container_options = models.JSONField(
        default=dict, blank=True, help_text='For container steps, e.g. {"network": true, "args": ["--shm-size=1g"]}; a step has no network unless "network" is true.',
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def in_endings(self):
        return templating.split_endings(self.in_glob)

    @property
    def out_endings(self):
        return templating.split_endings(self.out_glob)

    @property
    def runs_job(self):
        """Does this task run another job (its queue type's execution behaviour is ``job``)? Its executable names that job."""
        return bool(self.backend_id) and self.backend.queue_type.execution_behaviour == QueueType.ExecutionBehaviour.JOB

    @property
    def runs_in_container(self):
        """Does this task run in a container (its queue type's execution behaviour is ``container``)?"""
        return bool(self.backend_id) and self.backend.queue_type.execution_behaviour == QueueType.ExecutionBehaviour.CONTAINER

    @property
    def exit_statuses(self):
        return {int(code) for code in self.custom_exit_status.replace(" ", "").split(",") if code}

    def clean(self):
        errors = {}
        for field in ("in_glob", "out_glob", "stdout_glob"):
            for ending in templating.split_endings(getattr(self, field)):
                if field == "in_glob" and ending.startswith("*"):
                    ending = ending[1:]  # "*.part": gather every earlier step's .part file
                if not ENDING.match(ending) or ending in {".", ".."}:
                    errors.setdefault(field, []).append(f"'{ending}' is not a file ending; use letters, digits and '._+-', no '/' or '*'")
        if "," in self.stdout_glob:
            errors.setdefault("stdout_glob", []).append("takes one ending, not a list")
        for code in self.custom_exit_status.replace(" ", "").split(","):
            if code and (not code.isdigit() or not 0 < int(code) < 256):
                errors.setdefault("custom_exit_status", []).append(f"'{code}' is not an exit status between 1 and 255")
        problems = self.placeholder_errors(parameter_count=None) + self.quoting_errors()
        if problems:
            errors.setdefault("executable", []).extend(problems)
        problem = choices_problem(self.input_choices, self.input_prompt)
        if problem:
            errors["input_choices"] = problem
        if self.cache and self.dynamic:
            errors["cache"] = "a dynamic task cannot be cached: reusing its results would not replay the nodes it adds"
        if self.qc:
            problem = qc_problem(self.qc)
            if problem:
                errors["qc"] = problem
        problem = resource_problem(self.resources)
        if problem:
            errors["resources"] = problem
        if self.runs_in_container:
            errors.update(container_problems(self.image, self.container_options))
        else:
            problem = options_problem(self.container_options)
            if problem:
                errors["container_options"] = problem
        if errors:
            raise ValidationError(errors)

    def placeholder_errors(self, parameter_count):
        """Return messages for placeholders the task does not define.

        ``parameter_count`` None skips the ``$P`` check (parameters may not be saved yet).
        """
        if self.runs_job:
            return []
        limits = {"I": (len(self.in_endings), "in_glob defines"), "O": (len(self.out_endings), "out_glob defines")}
        if parameter_count is not None:
            limits["P"] = (parameter_count, "the task has")
        problems = []
        for placeholder in templating.placeholders(self.executable):
            if placeholder.kind in limits:
                limit, what = limits[placeholder.kind]
                if placeholder.index > limit:
                    noun = "parameter" if placeholder.kind == "P" else "ending"
                    problems.append(f"{placeholder.text} is used but {what} {limit} {noun}{'' if limit == 1 else 's'}")
        return problems

    def quoting_errors(self, parameters=None):
        """Return messages for value placeholders written where their quoting does not hold.

        Inside the author's own quotes (``'$P1'`` in a shell line, Python or R
        code), a comment, a here-document or shell arithmetic, a submitted value
        could end the author's string and run as a command or code (``jobs.quoting``).
        ``parameters``: the task's parameters in ``$P`` order, once known; only
        then is shell arithmetic judged, as it depends on their types.
        """
        if not self.backend_id:
            return []
        fixed = None if parameters is None else {f"$P{number}" for number, parameter in enumerate(parameters, start=1) if parameter.fixed}
        return quoting.problems(self.executable, self.backend.queue_type.execution_behaviour, fixed)

    def run_spec(self):
        """``(parameters as [(rest_name, ParamSpec)], environment as {name: value})``, cached per version.

        Steps read this for every run; the cache is keyed by ``updated_at``,
        which saving the task or any of its parameters or variables moves on.
        """
        key = (self.pk, self.updated_at)
        spec = _RUN_SPECS.get(key)
        if spec is None:
            spec = (
                [(parameter.rest_name, parameter.spec()) for parameter in self.parameters.all()],
                {variable.name: variable.value for variable in self.environment.all()},
            )
            if len(_RUN_SPECS) > 1000:
                _RUN_SPECS.clear()
            _RUN_SPECS[key] = spec
        return spec

    def check_parameters(self):
        """Check ``$P`` placeholders against the saved parameters, and their types where the shell evaluates them.

        Raises:
            ValidationError: on the ``executable`` field.
        """
        parameters = list(self.parameters.all())
        problems = self.placeholder_errors(parameter_count=len(parameters)) + self.quoting_errors(parameters)
        if problems:
            raise ValidationError({"executable": list(dict.fromkeys(problems))})


_RUN_SPECS = {}


def choices_problem(choices, prompt):
    """What is wrong with a task's ``input_choices``, or None."""
    if not isinstance(choices, list) or not all(isinstance(choice, str) and choice.strip() for choice in choices):
        return "must be a list of answers, e.g. [\"yes\", \"no\"]"
    if choices and not prompt:
        return "only a task with an input prompt takes answers; set input_prompt too"
    if len(set(choices)) != len(choices):
        return "lists an answer twice"
    if any(len(choice) > 200 for choice in choices):
        return "an answer may have at most 200 characters"
    return None


class Parameter(models.Model):
    class Type(models.TextChoices):
        STRING = "string"
        INT = "int"
        FLOAT = "float"
        BOOL = "bool"
        CHOICE = "choice"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="parameters")
    position = models.PositiveSmallIntegerField(default=0, help_text="$P1 is the parameter with the lowest position.")
    flag = models.CharField(max_length=64, blank=True, help_text="Written before the value, e.g. -z or --gap=.")
    default = models.CharField(max_length=1024, blank=True)
    bool_valued = models.BooleanField(default=False, help_text="The flag alone is written when the value is true, nothing when false.")
    rest_alias = models.CharField(max_length=64, validators=[ALIAS], help_text="Submitters send the value as <task name>_<rest alias>.")
    spacing = models.BooleanField(default=True, help_text="Put a space between flag and value.")
    switchless = models.BooleanField(default=False, help_text="Write the value without its flag.")
    type = models.CharField(max_length=8, choices=Type.choices, default=Type.STRING)
    choices = models.CharField(max_length=1024, blank=True, help_text="Comma-separated allowed values for type 'choice'.")
    required = models.BooleanField(default=False, help_text="A submission must give a value (a default also satisfies it).")
    allow_dash = models.BooleanField(
        default=False,
        help_text="Accept string values that begin with '-'. Off, such values are refused, as a program could take them for options (--output=…).",
    )
    aa_rest_name = models.CharField(
        "A_A field", max_length=256, blank=True, validators=[AA_NAME],
        help_text="The field A_A's clients send for it under /analytics_automated/ where that is not the REST name (e.g. 'psiblast seq_x').",
    )
    label = models.CharField(max_length=128, blank=True, help_text="What the submission form calls it, e.g. \"Gap penalty\"; empty means the REST name.")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["task", "rest_alias"], name="unique_rest_alias_per_task")]

    def __str__(self):
        return self.rest_name

    @property
    def rest_name(self):
        return f"{self.task.name}_{self.rest_alias}"

    @property
    def aa_field(self):
        """The field A_A's clients send for this parameter under /analytics_automated/."""
        return self.aa_rest_name or self.rest_name

    @property
    def choice_list(self):
        return [choice.strip() for choice in self.choices.split(",") if choice.strip()]

    def spec(self):
        return templating.ParamSpec(flag=self.flag, bool_valued=self.bool_valued, spacing=self.spacing, switchless=self.switchless)

    def parse(self, raw):
        """Return ``raw`` converted to this parameter's type.

        Raises:
            params.ParameterValueError: with a message naming the parameter.
        """
        try:
            return params.coerce(self.kind, raw, self.choice_list, allow_dash=self.allow_dash)
        except params.ParameterValueError as error:
            raise type(error)(f"parameter '{self.rest_name}' {error}") from None

    @property
    def kind(self):
        """The type values are parsed as: a bool-valued parameter is a bool whatever its type says."""
        return Parameter.Type.BOOL if self.bool_valued else self.type

    @property
    def fixed(self):
        """Is every value of this parameter a number (or a bool, which renders as the author's flag)?

        Only such values may stand in shell arithmetic (``jobs.quoting``).
        """
        if self.kind == Parameter.Type.CHOICE:
            return bool(self.choice_list) and all(quoting.arithmetic_safe(choice) for choice in self.choice_list)
        return self.kind != Parameter.Type.STRING

    @property
    def typed_default(self):
        """The default as a value of the parameter's type (10, True, 0.5, "text"), or None when there is none."""
        if self.default == "":
            return None
        try:
            return params.coerce(self.kind, self.default, self.choice_list, allow_dash=True)
        except params.ParameterValueError:  # saved around validation; submitting says what is wrong
            return None

    def rest_name_clash(self):
        """Return the parameter of another task that has this one's REST name, or None.

        ``<task>_<alias>`` is ambiguous when names hold '_': task 'a_b' with
        alias 'c' and task 'a' with alias 'b_c' are both 'a_b_c', and one
        submitted value would reach both. REST names are one namespace for
        the whole catalogue, as a batch sends its values to every job in it.
        """
        name = self.rest_name
        splits = [models.Q(task__name=name[:at], rest_alias=name[at + 1:]) for at, char in enumerate(name) if char == "_"]
        others = Parameter.objects.filter(functools.reduce(operator.or_, splits)).select_related("task")
        if self.task_id is not None:
            others = others.exclude(task_id=self.task_id)
        return others.first()

    def clean(self):
        errors = {}
        if self.type == Parameter.Type.CHOICE and not self.choice_list:
            errors["choices"] = "a choice parameter needs a comma-separated list of choices"
        if self.bool_valued and not self.flag:
            errors["flag"] = "a bool-valued parameter needs a flag to write when true"
        if self.bool_valued and self.switchless:
            errors["switchless"] = "a bool-valued parameter cannot also be switchless"
        # On a task's add page the task is not saved yet, but it is set on the parameter.
        has_task = self.task_id is not None or Parameter.task.is_cached(self)
        if self.default != "" and has_task and "choices" not in errors:
            try:
                self.parse(self.default)
            except params.ParameterValueError as error:
                errors["default"] = str(error).replace(f"parameter '{self.rest_name}'", "the default")
                if isinstance(error, params.LeadingDash):
                    errors["default"] += "; tick allow_dash if the task takes such values safely"
        if has_task and self.rest_alias and "rest_alias" not in errors:
            clash = self.rest_name_clash()
            if clash is not None:
                errors["rest_alias"] = (
                    f"parameter '{self.rest_alias}' of task '{self.task.name}' and parameter '{clash.rest_alias}' of task "
                    f"'{clash.task.name}' would both be sent as '{self.rest_name}'; change one of the rest aliases"
                )
        if errors:
            raise ValidationError(errors)


class Environment(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="environment")
    name = models.CharField(max_length=128, validators=[ENV_NAME])
    value = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["task", "name"], name="unique_env_name_per_task")]

    def __str__(self):
        return f"{self.name}={self.value}"


class Configuration(models.Model):
    """Software or data a task depends on, recorded for provenance."""

    class Kind(models.TextChoices):
        SOFTWARE = "software"
        DATASET = "dataset"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="configurations")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SOFTWARE)
    name = models.CharField(max_length=128)
    version = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self):
        return f"{self.name} {self.version}".strip()


class Compat(models.TextChoices):
    """Whose run-time semantics a job keeps where Sluice and Analytics Automated differ."""

    SLUICE = "", "Sluice"
    AA = "aa", "Analytics Automated"


class Job(models.Model):
    name = models.CharField(max_length=64, unique=True, validators=[NAME])
    description = models.TextField(blank=True)
    runnable = models.BooleanField(default=True, help_text="Only runnable jobs accept submissions.")
    login_required = models.BooleanField(default=False, help_text="Only logged-in users may submit (anonymous submission is allowed otherwise).")
    compat = models.CharField(
        max_length=8, blank=True, default="", choices=Compat.choices,
        help_text="Run-time semantics: Sluice's own (empty), or Analytics Automated's (aa) for a job imported from it (docs/migrating-from-aa.md).",
    )
    aa_name = models.CharField(
        "A_A name", max_length=256, blank=True, validators=[AA_NAME],
        help_text="The job's name in Analytics Automated where it was not a valid name here (e.g. it held a space): A_A's clients use it under /analytics_automated/.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def aa_label(self):
        """The job's name as A_A's clients know it under /analytics_automated/."""
        return self.aa_name or self.name

    @classmethod
    def for_submission(cls):
        """Jobs with their steps, tasks and parameters loaded at once, as submitting needs them all."""
        steps = models.Prefetch("steps", queryset=Step.objects.select_related("task__backend__queue_type").prefetch_related("task__parameters"))
        return cls.objects.prefetch_related(steps, "validators")

    def steps_with_tasks(self):
        """The job's steps with their tasks: the prefetched ones when loaded by ``for_submission``."""
        if "steps" in getattr(self, "_prefetched_objects_cache", {}):
            return list(self.steps.all())
        return list(self.steps.select_related("task__backend__queue_type").prefetch_related("task__parameters"))

    def step_specs(self, steps=None):
        return [dag.StepSpec(step.key, step.ordering, tuple(step.after)) for step in (steps or self.steps_with_tasks())]

    def check_steps(self):
        """Check the saved steps form a valid graph, and that a runnable job has one.

        Raises:
            ValidationError: naming the step, the unknown key or the cycle.
        """
        specs = self.step_specs()
        problem = self.stepless_problem(len(specs))
        if problem:
            raise ValidationError({"steps": problem})
        try:
            dag.check_steps(specs)
        except dag.StepGraphError as error:
            raise ValidationError({"steps": str(error)}) from None

    def check_promises(self):
        """Check the saved promises against the saved steps (``promise_problems``).

        Raises:
            ValidationError: on ``promises``, one message per problem.
        """
        problems = self.promise_problems([promise.as_dict() for promise in self.promises.all()], [step.key for step in self.steps.all()])
        if problems:
            raise ValidationError({"promises": [message for _, message in problems]})

    @staticmethod
    def promise_problems(promises, step_keys):
        """Return ``(index, message)`` for each promise that names steps the job does not have.

        A ``component`` lies between two registered nodes, so both its ends must
        be steps of the job, and two different ones. Promises about nodes
        (``no_edges_from``, ``fixed_style``, ...) may name nodes a step adds at run
        time, so they are not checked here.
        """
        keys, problems = set(step_keys), []
        for index, promise in enumerate(promises):
            if promise.get("kind") != "component":
                continue
            for end in ("from", "to"):
                if promise.get(end) not in keys:
                    hint = f"; its steps are {', '.join(sorted(keys))}" if keys else "; it has no steps"
                    problems.append((index, f"component '{end}' names '{promise.get(end)}', which is not a step of the job{hint}"))
            if promise.get("from") == promise.get("to"):
                problems.append((index, f"a component lies between two different steps, not from '{promise.get('from')}' to itself"))
        return problems

    def check_subjobs(self):
        """Check the params of the saved sub-job steps against the jobs they run (``subjob_problems``).

        Raises:
            ValidationError: on ``steps``, one message per problem.
        """
        problems = self.subjob_problems()
        if problems:
            raise ValidationError({"steps": [message for _, message in problems]})

    def subjob_problems(self, steps=None):
        """Return ``(step key, message)`` for what the sub-job steps leave unset, or map wrongly, in the jobs they run.

        A child parameter that is required and has no default needs a value:
        one the step maps, or one the parent's submitter gives (the parent
        takes that REST name itself, through a step of the same task). A
        mapped name must be a parameter of the child, and an expression may
        only read the parent's parameters and the outputs of steps that run
        before the sub-job step. A child job not saved yet cannot be checked;
        that is only an error when the step maps parameters to it.
        ``steps``: the steps about to be saved (admin), else the saved ones.
        """
        steps = steps if steps is not None else self.steps_with_tasks()
        subjob_steps = [step for step in steps if step.task_id is not None and step.task.runs_job]
        if not subjob_steps:
            return []
        taken = {parameter.rest_name for parameter in self.parameters(steps)}
        edges = dag.step_edges(dag.StepSpec(step.key, step.ordering, tuple(step.after)) for step in steps)
        return [(step.key, message) for step in subjob_steps for message in self._mapping_problems(step, taken, edges)]

    def input_problems(self, steps=None):
        """Return ``(step key, message)`` for each file ending a step reads that nothing before it can provide.

        At run time a (non-gathering) in-ending takes the nearest earlier step's
        file with that ending, or the upload for ``.input``; none found fails
        the step (``MissingInput``, in ``execution.engine._inputs``). So an
        ending is provided by ``.input`` or by an out- or stdout-ending of a
        step that runs before (``dag.ancestors``). A dynamic or sub-job step
        before it may make files no definition names, so it silences the
        check, as does ``compat: aa`` (Analytics Automated ran steps without
        their files). ``steps``: those about to be saved (admin), else the saved ones.
        """
        if self.compat == Compat.AA:
            return []
        steps = [step for step in (steps if steps is not None else self.steps_with_tasks()) if step.task_id is not None]
        by_key = {step.key: step for step in steps}
        edges = dag.step_edges(self.step_specs(steps)) if steps else []
        problems = []
        for step in steps:
            before = [by_key[key] for key in dag.ancestors(step.key, edges) if key in by_key]
            if any(earlier.task.dynamic or earlier.task.runs_job for earlier in before):
                continue
            made = {".input"}
            for earlier in before:
                made.update(ending.lstrip("*") for ending in earlier.task.out_endings)
                if earlier.task.stdout_glob:
                    made.add(earlier.task.stdout_glob.strip())
            for ending in step.task.in_endings:
                if ending.startswith("*") or ending in made:
                    continue
                providers = sorted(made - {".input"})
                known = f"; the steps before it make {', '.join(providers)}" if providers else "; no step runs before it"
                problems.append((step.key, f"step '{step.key}' reads '{ending}', which neither the upload (.input) nor an earlier step provides{known}: it will fail when it runs"))
        return problems

    def _mapping_problems(self, step, taken, edges):
        params = step.params or {}
        child_name = step.task.executable.strip()
        child = Job.objects.filter(name=child_name).first()
        if child is None:
            return [f"step '{step.key}' maps parameters to job '{child_name}', which does not exist"] if params else []
        known = {parameter.rest_name: parameter for parameter in child.parameters()}
        problems = []
        for name in params:
            if name not in known:
                hint = f"; it takes {', '.join(sorted(known))}" if known else "; it takes no parameters"
                problems.append(f"step '{step.key}' maps '{name}', but job '{child.name}' has no parameter '{name}'{hint}")
        for name, parameter in known.items():
            if parameter.required and parameter.default == "" and name not in params and name not in taken:
                problems.append(
                    f"step '{step.key}' runs job '{child.name}', whose parameter '{name}' is required and has no default; "
                    f"give it a value in the step's params, e.g. params: {{{name}: \"'value'\"}}"
                )
        readable = taken | dag.ancestors(step.key, edges) | set(mappings.PLACEHOLDERS)
        for name, entry in params.items():
            for used in sorted(mappings.names(entry) - readable):
                problems.append(
                    f"step '{step.key}' maps '{name}' from {entry!r}, which reads '{used}': that is neither a parameter of job "
                    f"'{self.name}' nor a step that runs before '{step.key}' (to pass text, quote it: \"'{used}'\")"
                )
        return problems

    def parents(self):
        """The jobs with a step that runs this job as a sub-job."""
        candidates = Job.objects.filter(
            steps__task__backend__queue_type__execution_behaviour=QueueType.ExecutionBehaviour.JOB, steps__task__executable__contains=self.name
        ).distinct()
        return [job for job in candidates if any(step.task.runs_job and step.task.executable.strip() == self.name for step in job.steps_with_tasks())]

    def stepless_problem(self, step_count):
        """Say what is wrong when a runnable job would have no steps: a submission would run nothing and be 'complete'."""
        if self.runnable and step_count == 0:
            return f"job '{self.name}' is runnable but has no steps; add a step, or make it not runnable to keep it as a draft"
        return None

    def refusal(self, steps=None):
        """Return why the job takes no submission now (naming it), or None.

        ``steps``: the job's steps, when the caller has them already.
        """
        if not self.runnable:
            return f"job '{self.name}' is not runnable"
        steps = steps if steps is not None else self.steps_with_tasks()
        if not steps:
            return f"job '{self.name}' has no steps, so it is not runnable"
        problems = self.subjob_problems(steps)
        if problems:  # saving the job refuses these; the child job may have changed since
            return f"job '{self.name}' is not runnable: {problems[0][1]}"
        # Saving refuses clashing REST names; rows saved before it did could still clash.
        seen = {}
        for parameter in (parameter for step in steps for parameter in step.task.parameters.all()):
            other = seen.setdefault(parameter.rest_name, parameter)
            if other.task_id != parameter.task_id:
                return (
                    f"job '{self.name}' is not runnable: parameter '{parameter.rest_alias}' of task '{parameter.task.name}' and parameter "
                    f"'{other.rest_alias}' of task '{other.task.name}' are both '{parameter.rest_name}'; an administrator must rename one"
                )
        return None

    @classmethod
    def accepting(cls):
        """The jobs that take submissions: runnable, with at least one step."""
        return cls.objects.filter(runnable=True, steps__isnull=False).distinct()

    def parameters(self, steps=None):
        """Return the parameters submitters may set, one per REST name, in step order.

        ``steps``: the job's steps with their tasks, when the caller has them already.
        """
        by_name = {}
        for step in steps if steps is not None else self.steps_with_tasks():
            for parameter in step.task.parameters.all():
                by_name.setdefault(parameter.rest_name, parameter)
        return list(by_name.values())

    def resolve_params(self, raw, steps=None):
        """Return ``{rest_name: value}`` for every parameter, typed, defaults filled in.

        Raises:
            ValidationError: keyed by REST name, one message per bad or missing value,
            and for names the job does not take.
        """
        known = self.parameters(steps)
        names = {parameter.rest_name for parameter in known}
        errors = {}
        for name in sorted(set(raw) - names):
            hint = f"; it takes {', '.join(sorted(names))}" if names else "; it takes no parameters"
            errors[name] = f"job '{self.name}' has no parameter '{name}'{hint}"
        values = {}
        for parameter in known:
            given = raw.get(parameter.rest_name)
            if given is None or given == "":
                given = parameter.default
            if given == "":
                if parameter.required:
                    errors[parameter.rest_name] = f"parameter '{parameter.rest_name}' is required"
                values[parameter.rest_name] = False if parameter.bool_valued else None
                continue
            try:
                values[parameter.rest_name] = parameter.parse(given)
            except params.ParameterValueError as error:
                errors[parameter.rest_name] = str(error)
        if errors:
            raise ValidationError(errors)
        return values

    def validate_upload(self, data):
        """Run every validator of the job on the uploaded bytes.

        Raises:
            ValidationError: on ``input_data``, naming the validator that refused.
        """
        for validator in self.validators.all():
            try:
                validators.validate(validator.validation_type, data)
            except validators.UploadInvalid as error:
                raise ValidationError({"input_data": f"validator '{validator.validation_type}' rejected the upload: {error}"}) from None


class Step(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=64, validators=[NAME], help_text="Names the step within the job; defaults to the task name.")
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="steps")
    ordering = models.IntegerField(default=0, help_text="Steps with equal ordering run in parallel; used when no step names 'after'.")
    after = models.JSONField(default=list, blank=True, help_text="Keys of steps this one runs after.")
    enabled = models.BooleanField(default=True, help_text="A disabled step is skipped; the steps after it still run.")
    when = models.CharField(max_length=500, blank=True, help_text="Run only if this expression is true, e.g. \"check.passed == true and job_mode == 'full'\"; otherwise skipped.")
    foreach = models.JSONField(
        default=dict, blank=True,
        help_text='Run once per item: {"lines": ".txt"}, {"files": ".part"}, {"output": "step.name"} or {"param": "task_alias"}; each instance sees $ITEM and $INDEX.',
    )
    params = models.JSONField(
        default=dict, blank=True,
        help_text=(
            'For a sub-job step: the child job\'s parameters (REST names) mapped to expressions, e.g. {"count_n": "$INDEX + 1", '
            '"count_word": "$ITEM", "count_mode": "split.mode", "count_tag": "\'fixed text\'"}; they may read the parent\'s parameters, '
            'outputs of earlier steps, and $ITEM and $INDEX in a foreach step.'
        ),
    )

    class Meta:
        ordering = ["ordering", "id"]
        constraints = [models.UniqueConstraint(fields=["job", "key"], name="unique_step_key_per_job")]

    def __str__(self):
        return f"{self.job.name}.{self.key}" if self.job_id else self.key

    def clean(self):
        errors = {}
        if not isinstance(self.after, list) or not all(isinstance(key, str) for key in self.after):
            errors["after"] = "must be a list of step keys"
        if self.when:
            try:
                expressions.parse(self.when)
            except expressions.ExpressionError as error:
                errors["when"] = str(error)
        if self.foreach:
            problem = foreach_problem(self.foreach)
            if problem:
                errors["foreach"] = problem
        if self.params is None:  # a blank form field: no mapping
            self.params = {}
        if self.params:
            problem = self.params_problem()
            if problem:
                errors["params"] = problem
        if errors:
            raise ValidationError(errors)

    def params_problem(self):
        """What is wrong with ``params`` on its own (its form, its task, its placeholders), or None.

        What the child job takes is checked with the whole job (``Job.subjob_problems``).
        """
        problem = mappings.shape_problem(self.params)
        if problem:
            return problem
        if self.task_id is not None and not self.task.runs_job:
            return f"task '{self.task.name}' does not run a sub-job (its queue type's execution behaviour is not 'job'), so its step takes no params"
        if not self.foreach:
            for name, entry in self.params.items():
                used = mappings.names(entry) & set(mappings.PLACEHOLDERS)
                if used:
                    return f"'{name}' uses {', '.join(sorted(used))}, which only the instances of a foreach step have"
        return None


class Validator(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="validators")
    validation_type = models.CharField(max_length=32, choices=[(name, name) for name in validators.VALIDATORS])

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.validation_type


def broken_parents(jobs):
    """Return ``(parent, step key, message)`` for each sub-job step that runs one of ``jobs`` and is left wrong by it.

    For re-checking the parents of a job whose parameters (its tasks', or its
    steps') have changed: a child that gained a required parameter leaves every
    parent that does not map it unable to run.
    """
    found, seen = [], set()
    for job in jobs:
        for parent in job.parents():
            if parent.pk in seen:
                continue
            seen.add(parent.pk)
            found.extend((parent, key, message) for key, message in parent.subjob_problems())
    return found


def jobs_running(tasks):
    """The jobs with a step that runs one of ``tasks``."""
    return list(Job.objects.filter(steps__task__in=tasks).distinct())


class JobPromise(models.Model):
    """A promise registered with a job: how its graph may grow at run time."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="promises")
    kind = models.CharField(max_length=32, choices=[(kind, kind) for kind in promises.KINDS])
    spec = models.JSONField(default=dict, blank=True, help_text="The promise's other fields, e.g. {\"tasks\": [\"M\"]} or {\"value\": 10}.")

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.kind

    def as_dict(self):
        return {"kind": self.kind, **(self.spec or {})}

    def clean(self):
        if self.spec is None:  # a blank form field: kinds without fields need none
            self.spec = {}
        if not isinstance(self.spec, dict):
            raise ValidationError({"spec": "must be a mapping of the promise's fields"})
        try:
            promises.parse_promise(self.as_dict())
        except promises.PromiseError as error:
            raise ValidationError({"spec": str(error)}) from None


FOREACH_SOURCES = ("lines", "files", "output", "param")


def foreach_problem(spec):
    """What is wrong with a step's ``foreach``, or None."""
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in FOREACH_SOURCES:
        return f"give exactly one of {', '.join(FOREACH_SOURCES)}, e.g. {{\"lines\": \".txt\"}}"
    value = next(iter(spec.values()))
    if not isinstance(value, str) or not value:
        return "the source must be a non-empty string"
    return None


def qc_problem(spec):
    """What is wrong with a task's ``qc``, or None."""
    if not isinstance(spec, dict) or not {"output", "check"} <= set(spec) or set(spec) - {"output", "check", "on_fail"}:
        return 'give {"output": ".qc.json", "check": "<expression>", "on_fail": "fail" or "terminate"}'
    if spec.get("on_fail", "fail") not in ("fail", "terminate"):
        return "on_fail must be fail or terminate"
    try:
        expressions.parse(spec["check"])
    except expressions.ExpressionError as error:
        return f"check: {error}"
    return None


@receiver([post_save, post_delete], sender=Parameter)
@receiver([post_save, post_delete], sender=Environment)
def _task_changed(sender, instance, **kwargs):
    """A parameter or variable changed: move the task's version on, so cached run specs are dropped."""
    Task.objects.filter(pk=instance.task_id).update(updated_at=timezone.now())


class CatalogueRevision(models.Model):
    """One row whose ``token`` every change to the catalogue replaces (``jobs.catalogue``): what a process's cached jobs are checked against."""

    token = models.BigIntegerField()
    changed_at = models.DateTimeField()

    class Meta:
        verbose_name = "catalogue revision"
