"""Serializers: the shapes of API requests and responses, for parsing and for the OpenAPI schema.

Responses are built by the domain (``execution.documents``) so that the API and
``runjob --json`` print the same document; these classes describe them.
"""
from rest_framework import serializers

from execution.states import NodeStatus, SubmissionStatus

SUBMISSION_STATUSES = SubmissionStatus.choices
NODE_STATUSES = NodeStatus.choices


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ParameterSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The REST name: <task>_<alias>.")
    type = serializers.ChoiceField(choices=["string", "int", "float", "bool", "choice"])
    default = serializers.JSONField(
        allow_null=True, help_text="The default as a value of the parameter's type (a number for int and float, true/false for bool), or null when there is none.",
    )
    required = serializers.BooleanField()
    description = serializers.CharField(allow_blank=True)
    choices = serializers.ListField(child=serializers.CharField())


class EndpointSerializer(serializers.Serializer):
    job = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    url = serializers.CharField(help_text="Where to POST submissions.")
    login_required = serializers.BooleanField()
    takes_input = serializers.BooleanField(help_text="Whether a step reads the upload (input_data).")
    validators = serializers.ListField(child=serializers.CharField())
    parameters = ParameterSerializer(many=True)


class StepSerializer(serializers.Serializer):
    id = serializers.CharField()
    task = serializers.CharField()
    ordering = serializers.IntegerField()
    after = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    when = serializers.CharField(allow_blank=True)
    foreach = serializers.DictField()
    params = serializers.DictField(help_text="For a sub-job step: the child job's parameters (REST names) mapped to expressions or values.")


class JobSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    runnable = serializers.BooleanField()
    login_required = serializers.BooleanField()
    url = serializers.CharField()
    graph_url = serializers.CharField()


class JobDetailSerializer(JobSerializer):
    steps = StepSerializer(many=True)
    parameters = ParameterSerializer(many=True)
    validators = serializers.ListField(child=serializers.CharField())
    promises = serializers.ListField(child=serializers.DictField())


class SubmitFields(serializers.Serializer):
    """A submission. Parameters are further fields, named by their REST names (see /api/endpoints/ and the Job_<name> components)."""

    job = serializers.CharField(max_length=2000, help_text="A job's name; comma-separated names make a batch.")
    submission_name = serializers.CharField(required=False, allow_blank=True, max_length=256)
    # A plain string in the schema (an e-mail address or empty): the server checks it; a union here breaks generated form encoders.
    email = serializers.CharField(required=False, allow_blank=True, max_length=254, help_text="An e-mail address (or empty), mailed a link when the submission finishes.")


class SubmitJSONSerializer(SubmitFields):
    """A submission as JSON: the upload's text in ``input_data``; parameters as further members, typed (numbers, true/false) or as text."""

    input_data = serializers.CharField(required=False, allow_blank=True, help_text="The upload's text; steps read it as <ID>.input.")


class SubmitMultipartSerializer(SubmitFields):
    """A submission as a multipart form: the upload as the file ``input_data``; parameters as further form fields."""

    input_data = serializers.FileField(required=False, help_text="The upload; steps read it as <ID>.input, and its file name is kept as upload_name.")


class NodeLogSerializer(serializers.Serializer):
    attempt = serializers.IntegerField()
    stdout = serializers.IntegerField(help_text="Bytes the attempt wrote to stdout (the log keeps at most SLUICE_LOG_MAX_BYTES).")
    stderr = serializers.IntegerField(help_text="Bytes the attempt wrote to stderr.")
    url = serializers.CharField(help_text="The attempt's stdout as text; add &stream=stderr for its stderr.")


class NodeSerializer(serializers.Serializer):
    key = serializers.CharField()
    task = serializers.CharField()
    status = serializers.ChoiceField(choices=NODE_STATUSES)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    exit_code = serializers.IntegerField(allow_null=True)
    attempt = serializers.IntegerField()
    image_digest = serializers.CharField(allow_blank=True, help_text="The digest of the container image a container step's latest attempt ran in; empty for other steps.")
    message = serializers.CharField(allow_blank=True)
    outputs = serializers.DictField(help_text="Typed values the step sent (output operations, an input answer).")
    logs = NodeLogSerializer(many=True, help_text="Every attempt of the node's current run, with its log sizes.")


class ResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    node = serializers.CharField(allow_null=True)
    url = serializers.CharField()
    size = serializers.IntegerField()


class MessageSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    level = serializers.CharField()
    node = serializers.CharField(allow_null=True)
    text = serializers.CharField()


class SubmissionSerializer(serializers.Serializer):
    uuid = serializers.UUIDField()
    url = serializers.CharField()
    job = serializers.CharField()
    submission_name = serializers.CharField(allow_blank=True)
    upload_name = serializers.CharField(allow_blank=True, help_text="The upload's file name as the submitter's client gave it (empty for none, or for JSON text); shown, never used as a path.")
    archive_url = serializers.CharField(help_text="Every current result and the upload as one zip, in folders by step (GET).")
    ro_crate_url = serializers.CharField(help_text="A Workflow Run RO-Crate of the finished submission (GET; 409 while it runs).")
    status = serializers.ChoiceField(choices=SUBMISSION_STATUSES)
    priority = serializers.ChoiceField(choices=["low", "normal", "high"], help_text="The queue priority the submission was given.")
    last_message = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    params = serializers.DictField()
    nodes = NodeSerializer(many=True, help_text="The first SLUICE_DOCUMENT_LIMIT nodes, oldest first; nodes_next links to the rest.")
    nodes_count = serializers.IntegerField(help_text="How many nodes the submission has.")
    nodes_next = serializers.CharField(allow_null=True, help_text="The page of nodes after those listed (GET .../nodes/?limit=&offset=), or null when all are listed.")
    results = ResultSerializer(many=True, help_text="The first SLUICE_DOCUMENT_LIMIT current results; results_next links to the rest.")
    results_count = serializers.IntegerField(help_text="How many current results the submission has.")
    results_next = serializers.CharField(allow_null=True, help_text="The page of results after those listed, or null when all are listed.")
    history = ResultSerializer(many=True, help_text="Results of earlier runs of restarted nodes (the first SLUICE_DOCUMENT_LIMIT).")
    history_count = serializers.IntegerField(help_text="How many results of earlier runs there are.")
    history_next = serializers.CharField(allow_null=True, help_text="The page of history after the entries listed, or null when all are listed.")
    messages = MessageSerializer(many=True, help_text="The first SLUICE_DOCUMENT_LIMIT messages, oldest first; messages_next links to the rest.")
    messages_count = serializers.IntegerField(help_text="How many messages the submission has.")
    messages_next = serializers.CharField(allow_null=True, help_text="The page of messages after those listed, or null when all are listed.")


class SubmissionSummarySerializer(serializers.Serializer):
    uuid = serializers.UUIDField()
    url = serializers.CharField()
    job = serializers.CharField()
    submission_name = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=SUBMISSION_STATUSES)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class BatchSerializer(serializers.Serializer):
    uuid = serializers.UUIDField()
    url = serializers.CharField()
    status = serializers.ChoiceField(choices=SUBMISSION_STATUSES, help_text="complete when every submission is; otherwise the least finished status.")
    submissions = SubmissionSummarySerializer(many=True)


class GraphNodeSerializer(serializers.Serializer):
    key = serializers.CharField()
    task = serializers.CharField()
    kind = serializers.ChoiceField(choices=["node", "wildcard"])
    status = serializers.CharField()
    label = serializers.CharField()
    color = serializers.CharField(required=False, help_text="Set on the control channel (style).")
    when = serializers.CharField(required=False, help_text="A conditional step's condition: the node is a possible branch until it is decided.")
    not_taken = serializers.BooleanField(required=False, help_text="True on a node skipped because its condition was false.")
    subjob = serializers.CharField(required=False, help_text="The job the node runs as a sub-job.")
    may_add = serializers.ListField(
        child=serializers.ChoiceField(choices=["nodes", "edges"]), required=False,
        help_text="On a dynamic node that may still grow the graph: what the promises still let it add.",
    )
    wildcard = serializers.ChoiceField(
        choices=["grow", "loop", "foreach"], required=False,
        help_text="On a wildcard: what may come, nodes a dynamic node adds (grow), repetitions of its own task (loop), or a foreach step's instances.",
    )
    of = serializers.CharField(required=False, help_text="On a wildcard: the key of the node whose future it stands for.")
    tasks = serializers.ListField(child=serializers.CharField(), allow_null=True, required=False, help_text="On a wildcard: the tasks that may appear (null: any).")
    most = serializers.IntegerField(allow_null=True, required=False, help_text="On a wildcard: at most this many more nodes (null: no limit).")


class GraphEdgeSerializer(serializers.Serializer):
    # "from" is a Python keyword, so the field is declared under another name and renamed.
    source = serializers.CharField()
    to = serializers.CharField()
    kind = serializers.ChoiceField(choices=["edge", "possible"])
    label = serializers.CharField(allow_blank=True)
    color = serializers.CharField(required=False, help_text="Set on the control channel (style).")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("source")
        return fields


class GraphSerializer(serializers.Serializer):
    nodes = GraphNodeSerializer(many=True)
    edges = GraphEdgeSerializer(many=True)


class JobTimeSerializer(serializers.Serializer):
    job = serializers.CharField()
    count = serializers.IntegerField()
    mean_seconds = serializers.FloatField(allow_null=True)
    median_seconds = serializers.FloatField(allow_null=True)


class InputSerializer(serializers.Serializer):
    value = serializers.JSONField(help_text="The answer: any JSON value (text in a form).")


class ActionSerializer(serializers.Serializer):
    uuid = serializers.UUIDField()
    status = serializers.ChoiceField(choices=SUBMISSION_STATUSES)
    detail = serializers.CharField()
