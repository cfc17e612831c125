"""The submission form, built from a job's parameters.

Values are checked by the domain (``Job.resolve_params`` through
``intake.accept``), not here, so the page and the API give the same messages;
the form only chooses widgets and labels, and carries those messages back to
the fields. It asks for a file only when a step reads the upload
(``engine.upload_reader``, the rule ``engine.submit`` applies).
"""
import shlex

from django import forms

from execution import engine

FILE_AGAIN = "Choose the file again: a browser does not keep a chosen file when the page comes back with errors."


class SubmitForm(forms.Form):
    submission_name = forms.CharField(required=False, max_length=256, label="Name this submission")
    email = forms.CharField(required=False, max_length=254, label="E-mail me when it finishes", widget=forms.EmailInput)

    def __init__(self, job, *args, again=None, **kwargs):
        """``again``: an earlier submission of ``job`` whose upload may be reused (Run again)."""
        super().__init__(*args, **kwargs)
        self.job = job
        self.steps = job.steps_with_tasks()
        self.reader = engine.upload_reader(job, self.steps)
        self.again = again
        self.parameter_names = []
        self.parameters_by_name = {}
        if self.reader:
            self.fields["input_data"] = self._upload_field(job)
        if self.reader and again is not None and again.upload_name and again.results.filter(node__isnull=True, ending=".input").exists():
            self.fields["reuse_upload"] = forms.BooleanField(
                required=False, initial=True, label=f"Use the same file ({again.upload_name})",
                help_text="Leave it ticked to run on the file the earlier submission was given; untick it to choose another.",
            )
        for parameter in job.parameters(self.steps):
            self.fields[parameter.rest_name] = self._field(parameter)
            self.parameter_names.append(parameter.rest_name)
            self.parameters_by_name[parameter.rest_name] = parameter
        # What the job needs first; naming and e-mail are optional extras.
        self.order_fields(["reuse_upload", "input_data", *self.parameter_names, "submission_name", "email"])

    def _upload_field(self, job):
        checks = [name for name in job.validators.values_list("validation_type", flat=True) if name != "none"]
        help_text = f"Step '{self.reader}' reads it." + (f" Checked as: {', '.join(checks)}." if checks else "")
        field = forms.FileField(required=False, label="Input file", help_text=help_text)
        field.rest_name = "input_data"
        field.marked_required = True
        return field

    def _field(self, parameter):
        label = parameter.label or parameter.rest_name
        common = {"label": label, "help_text": parameter.description, "initial": parameter.default}
        required = parameter.required and parameter.default == ""
        if parameter.bool_valued or parameter.type == "bool":
            field = forms.BooleanField(required=False, initial=parameter.default.lower() in {"1", "true", "yes", "on"}, label=label, help_text=parameter.description)
        elif parameter.type == "choice":
            choices = [(choice, choice) for choice in parameter.choice_list]
            if not required:
                choices = [("", "(default)")] + choices
            field = forms.ChoiceField(choices=choices, required=False, **common)
        else:
            widget = forms.NumberInput(attrs={"step": "any"}) if parameter.type in ("int", "float") else forms.TextInput
            field = forms.CharField(required=False, widget=widget, **common)
        if required:
            field.widget.attrs["required"] = True
            field.widget.attrs["aria-required"] = "true"
        field.rest_name = parameter.rest_name
        field.marked_required = required
        return field

    def parameters(self):
        """The parameter values to submit, as text (the domain parses them)."""
        values = {}
        for name in self.parameter_names:
            value = self.cleaned_data.get(name)
            if isinstance(value, bool):
                values[name] = "true" if value else "false"
            elif value not in (None, ""):
                values[name] = value
        return values

    def reuses_upload(self):
        """Whether to run on the earlier submission's stored upload: asked for, and no new file chosen."""
        return "reuse_upload" in self.fields and self.cleaned_data.get("reuse_upload") and not self.cleaned_data.get("input_data")

    def add_domain_errors(self, errors):
        """Put the domain's field-keyed messages next to the fields they name."""
        for field, messages in errors.items():
            self.add_error(field if field in self.fields else None, messages)

    def file_lost(self):
        """Whether the page comes back with errors after a file was chosen: the browser has forgotten it."""
        return self.is_bound and bool(self.errors) and "input_data" in self.fields and bool(self.files.get("input_data")) and not self.reuses_upload()

    def summary(self):
        """``(anchor id or "", label, message)`` for every error, for the list at the top of the form."""
        lines = [("", "", message) for message in self.non_field_errors()]
        for name, field in self.fields.items():
            for message in self[name].errors:
                lines.append((self[name].auto_id, field.label, message))
        return lines

    @staticmethod
    def initial_from(submission, job):
        """The form's first values to run ``submission`` again: its parameters (as the job takes them now) and its name."""
        names = {parameter.rest_name: parameter for parameter in job.parameters()}
        # Not the e-mail address: anyone holding an anonymous submission's uuid may open this page.
        initial = {"submission_name": submission.submission_name}
        for name, value in (submission.params or {}).items():
            parameter = names.get(name)
            if parameter is None or value is None:
                continue
            if parameter.bool_valued or parameter.type == "bool":
                initial[name] = bool(value)
            else:
                initial[name] = str(value)
        return initial


def curl_lines(job, form, base):
    """A curl command that works as copied: the upload only when the job takes one, required values filled in.

    A required parameter gets its default, else its first choice, else a placeholder of its type.
    """
    parts = ["curl", "-F", shlex.quote(f"job={job.name}")]
    if form.reader:
        parts += ["-F", "input_data=@yourfile"]
    for name in form.parameter_names:
        parameter = form.parameters_by_name[name]
        if not parameter.required:
            continue
        if parameter.default != "":
            value = parameter.default
        elif parameter.choice_list:
            value = parameter.choice_list[0]
        elif parameter.bool_valued or parameter.type == "bool":
            value = "true"
        else:
            value = {"int": "1", "float": "1.0"}.get(parameter.type, "VALUE")
        parts += ["-F", shlex.quote(f"{name}={value}")]
    parts.append(shlex.quote(f"{base}/api/submissions/"))
    return " ".join(parts)
