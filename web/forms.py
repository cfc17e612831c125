"""The submission form, built from a job's parameters.

Values are checked by the domain (``Job.resolve_params`` through
``intake.accept``), not here, so the page and the API give the same messages;
the form only chooses widgets and carries those messages back to the fields.
"""
from django import forms


class SubmitForm(forms.Form):
    input_data = forms.FileField(required=False, label="Input file", help_text="Steps read it as <ID>.input.")
    submission_name = forms.CharField(required=False, max_length=256, label="Name this submission")
    email = forms.CharField(required=False, max_length=254, label="E-mail me when it finishes", widget=forms.EmailInput)

    def __init__(self, job, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.job = job
        self.parameter_names = []
        for parameter in job.parameters():
            self.fields[parameter.rest_name] = self._field(parameter)
            self.parameter_names.append(parameter.rest_name)
        # What the job needs first; naming and e-mail are optional extras.
        self.order_fields(["input_data", *self.parameter_names, "submission_name", "email"])
        if job.validators.exclude(validation_type="none").exists():
            names = ", ".join(job.validators.values_list("validation_type", flat=True))
            self.fields["input_data"].help_text = f"Checked as: {names}. Steps read it as <ID>.input."

    def _field(self, parameter):
        common = {"label": parameter.rest_name, "help_text": parameter.description, "initial": parameter.default}
        if parameter.bool_valued or parameter.type == "bool":
            return forms.BooleanField(required=False, initial=parameter.default.lower() in {"1", "true", "yes", "on"}, label=common["label"], help_text=common["help_text"])
        required = parameter.required and parameter.default == ""
        if parameter.type == "choice":
            choices = [(choice, choice) for choice in parameter.choice_list]
            if not required:
                choices = [("", "(default)")] + choices
            return forms.ChoiceField(choices=choices, required=False, **common)
        widget = forms.NumberInput(attrs={"step": "any"}) if parameter.type in ("int", "float") else forms.TextInput
        field = forms.CharField(required=False, widget=widget, **common)
        if required:
            field.widget.attrs["required"] = True
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

    def add_domain_errors(self, errors):
        """Put the domain's field-keyed messages next to the fields they name."""
        for field, messages in errors.items():
            self.add_error(field if field in self.fields else None, messages)
