"""The as-of-now picture: every future the promises allow, and the branches a condition left out."""
import json
import shlex

import pytest

from execution import diagrams, engine
from execution.local import SynchronousRunner
from jobs.diagrams import allowed_futures
from jobs.models import JobPromise
from tests.factories import make_backend, make_job, make_queue_type, make_task

pytestmark = pytest.mark.django_db


def write_control(*operations):
    """A step's command line that sends ``operations`` on its control channel."""
    return "; ".join(f"printf '%s\\n' {shlex.quote(json.dumps(operation))} >> \"$SLUICE_CONTROL\"" for operation in operations)


def promise(job, kind, **spec):
    JobPromise.objects.create(job=job, kind=kind, spec=spec)


def wildcards(graph):
    return {node["key"]: node for node in graph["nodes"] if node["kind"] == "wildcard"}


def by_key(graph):
    return {node["key"]: node for node in graph["nodes"]}


def possible(graph):
    return {(edge["from"], edge["to"]) for edge in graph["edges"] if edge["kind"] == "possible"}


def test_a_foreach_step_is_drawn_with_its_fan_out_before_it_expands():
    job = make_job("fan", steps=[make_task("split"), ("shout", make_task("shout"), {"after": ["split"], "foreach": {"lines": ".lines"}}), ("gather", make_task("gather"), {"after": ["shout"]})])
    graph = diagrams.job_graph(job)
    assert wildcards(graph) == {"shout*": {
        "key": "shout*", "task": "", "kind": "wildcard", "status": "pending", "label": "shout ×N", "wildcard": "foreach", "of": "shout", "tasks": ["shout"], "most": None,
    }}
    assert possible(graph) == {("shout", "shout*"), ("shout*", "gather")}


def test_a_submission_shows_the_fan_out_until_the_step_expands():
    job = make_job("fan", steps=[make_task("split"), ("shout", make_task("shout"), {"after": ["split"], "foreach": {"param": "items"}})])
    submission = engine.submit(job, params={})
    assert wildcards(diagrams.submission_graph(submission))["shout*"]["wildcard"] == "foreach"


def test_a_condition_is_a_possible_branch_and_a_false_one_stays_in_the_picture_as_not_taken():
    first = make_task("first", write_control({"op": "output", "name": "go", "value": False}))
    job = make_job("branch", steps=[first, ("yes", make_task("yes"), {"after": ["first"], "when": "first.go == true"}), ("no", make_task("no"), {"after": ["first"], "when": "first.go == false"})])
    assert by_key(diagrams.job_graph(job))["yes"]["when"] == "first.go == true"
    submission = SynchronousRunner(job).init().process()
    nodes = by_key(diagrams.submission_graph(submission))
    assert submission.status == "complete", submission.last_message
    assert nodes["yes"]["status"] == "skipped" and nodes["yes"]["not_taken"] is True
    assert nodes["no"]["status"] == "succeeded" and "not_taken" not in nodes["no"]


def test_a_not_taken_branch_is_drawn_grey_and_dashed_and_says_so():
    dot = diagrams.to_dot({"nodes": [{"key": "b", "task": "b", "kind": "node", "status": "skipped", "label": "b", "when": "x", "not_taken": True}], "edges": []})
    assert "dashed" in dot and "#6b7280" in dot and "not taken" in dot


def test_a_max_nodes_promise_sets_how_many_may_come_and_closes_the_future_when_reached():
    job = make_job("branching", steps=[make_task("choose", dynamic=True), make_task("b"), make_task("c")])
    promise(job, kind="max_nodes", value=4)
    assert wildcards(diagrams.job_graph(job))["choose*"]["most"] == 1
    job.promises.update(spec={"value": 3})
    assert by_key(diagrams.job_graph(job))["choose"]["may_add"] == ["edges"]
    assert wildcards(diagrams.job_graph(job)) == {}


def test_a_max_nodes_promise_leaves_a_foreach_no_fan_out_once_reached():
    job = make_job("fan", steps=[make_task("split"), ("shout", make_task("shout"), {"after": ["split"], "foreach": {"lines": ".lines"}})])
    promise(job, kind="max_nodes", value=2)
    assert wildcards(diagrams.job_graph(job)) == {}


def test_no_new_edges_leaves_the_wildcard_unjoined_and_a_foreach_no_fan_out():
    job = make_job("grow", steps=[make_task("grower", dynamic=True), ("shout", make_task("shout"), {"after": ["grower"], "foreach": {"lines": ".lines"}})])
    promise(job, kind="no_new_edges")
    graph = diagrams.job_graph(job)
    assert list(wildcards(graph)) == ["grower*"]
    assert possible(graph) == set()


def test_no_edges_from_and_to_drop_the_possible_edges_they_forbid():
    job = make_job("grow", steps=[make_task("grower", dynamic=True), ("end", make_task("end"), {"after": ["grower"]})])
    promise(job, kind="no_edges_to", nodes=["end"])
    assert possible(diagrams.job_graph(job)) == {("grower", "grower*")}
    promise(job, kind="no_edges_from", nodes=["grower"])
    assert possible(diagrams.job_graph(job)) == set()


def test_a_task_that_may_only_add_itself_is_drawn_as_a_loop():
    job = make_job("loop", steps=[make_task("countdown", dynamic=True)])
    promise(job, kind="only_tasks", tasks=["countdown"])
    graph = diagrams.job_graph(job)
    assert wildcards(graph)["countdown*"]["wildcard"] == "loop"
    assert "repeats" in diagrams.to_dot(graph)


def test_a_step_that_runs_a_child_job_is_marked_as_a_sub_job():
    backend = make_backend("subjobs", queue_type=make_queue_type("jobs", execution_behaviour="job"))
    make_job("child", steps=[make_task("leaf")])
    parent = make_job("parent", steps=[make_task("call", "child", backend=backend)])
    assert by_key(diagrams.job_graph(parent))["call"]["subjob"] == "child"
    assert "sub-job child" in diagrams.to_dot(diagrams.job_graph(parent))


@pytest.mark.parametrize(
    "promises, expected",
    [
        ([], {"nodes": True, "room": None, "tasks": None, "edges": True}),
        ([{"kind": "no_new_nodes"}], {"nodes": False}),
        ([{"kind": "max_nodes", "value": 5}, {"kind": "max_nodes", "value": 3}], {"nodes": True, "room": 1}),
        ([{"kind": "only_tasks", "tasks": ["a", "b"]}, {"kind": "only_tasks", "tasks": ["b"]}], {"tasks": frozenset({"b"})}),
        ([{"kind": "only_tasks", "tasks": ["a"]}, {"kind": "only_tasks", "tasks": ["b"]}], {"nodes": False}),
        ([{"kind": "no_new_edges"}, {"kind": "shape", "pattern": "x"}], {"nodes": True, "edges": False}),
    ],
)
def test_allowed_futures_narrows_by_each_promise(promises, expected):
    graph = {"nodes": [{"key": key, "kind": "node"} for key in ("a", "b")] + [{"key": "a*", "kind": "wildcard"}], "edges": []}
    futures = allowed_futures(promises, graph)
    assert {name: getattr(futures, name) for name in expected} == expected


def test_a_dynamic_node_says_what_it_may_still_add_when_no_node_may_come():
    job = make_job("edges_only", steps=[make_task("grower", dynamic=True), make_task("other")])
    promise(job, "no_new_nodes")
    graph = diagrams.job_graph(job)
    assert wildcards(graph) == {}
    assert by_key(graph)["grower"]["may_add"] == ["edges"]
    assert "may_add" not in by_key(graph)["other"]


def test_a_shape_narrows_the_wildcard_to_the_names_a_matching_path_may_hold():
    job = make_job("shaped", steps=[make_task("start", dynamic=True), ("end", make_task("end"), {"after": ["start"]})])
    make_task("left"), make_task("other")
    promise(job, "shape", pattern="start( (left|right))* end")
    grower = wildcards(diagrams.job_graph(job))["start*"]
    assert grower["tasks"] == ["end", "left", "start"]  # of the tasks there are; "right" is none
    assert grower["label"] == "end* | left* | start*"


def test_a_shape_with_endless_names_is_narrowed_to_the_tasks_there_are_that_it_allows():
    job = make_job("shaped", steps=[make_task("x_grow", dynamic=True)])
    make_task("x_leaf"), make_task("y_leaf")
    promise(job, "shape", pattern=r"x_\w+( x_\w+)*")
    assert wildcards(diagrams.job_graph(job))["x_grow*"]["tasks"] == ["x_grow", "x_leaf"]
    job.promises.update(spec={"pattern": r"\w+( \w+)*"})
    assert wildcards(diagrams.job_graph(job))["x_grow*"]["tasks"] is None  # every task there is: any


def test_a_shape_that_no_new_task_can_follow_leaves_no_wildcard():
    job = make_job("closed", steps=[make_task("only", dynamic=True)])
    promise(job, "only_tasks", tasks=["elsewhere"])
    promise(job, "shape", pattern="only( only)*")
    graph = diagrams.job_graph(job)
    assert wildcards(graph) == {}
    assert by_key(graph)["only"]["may_add"] == ["edges"]


def test_only_edges_draws_just_the_possible_edges_it_allows():
    job = make_job("pairs", steps=[make_task("a", dynamic=True), ("z", make_task("z"), {"after": ["a"]})])
    make_task("m")
    promise(job, "only_edges", edges=[["a", "m"]])
    assert possible(diagrams.job_graph(job)) == {("a", "a*")}  # nothing may enter z
    job.promises.update(spec={"edges": [["a", "m"], ["m", "z"]]})
    assert possible(diagrams.job_graph(job)) == {("a", "a*"), ("a*", "z")}
    job.promises.update(spec={"edges": [["m", "z"]]})
    assert possible(diagrams.job_graph(job)) == {("a*", "z")}


def test_only_edges_that_an_expansion_cannot_make_leave_a_foreach_no_fan_out():
    job = make_job("fan", steps=[make_task("split"), ("shout", make_task("shout"), {"after": ["split"], "foreach": {"lines": ".lines"}}), ("gather", make_task("gather"), {"after": ["shout"]})])
    promise(job, "only_edges", edges=[["shout", "shout"]])
    assert wildcards(diagrams.job_graph(job)) == {}  # an instance's edge into gather joins shout -> gather
    job.promises.update(spec={"edges": [["shout", "shout"], ["shout", "gather"]]})
    assert list(wildcards(diagrams.job_graph(job))) == ["shout*"]


def test_a_component_narrows_nothing_as_a_node_may_be_added_outside_its_region():
    job = make_job("region", steps=[make_task("a", dynamic=True), ("b", make_task("b"), {"after": ["a"]})])
    promise(job, "component", **{"from": "a", "to": "b", "alternatives": ["x"]})
    assert wildcards(diagrams.job_graph(job))["a*"]["tasks"] is None


def test_the_picture_narrows_as_a_submission_runs_and_a_shape_is_promised_at_run_time():
    start = make_task("start", write_control({"op": "promise", "kind": "shape", "pattern": "start( mid)* end"}), dynamic=True)
    mid = make_task("mid", write_control(), dynamic=True)
    job = make_job("runtime_shape", steps=[start, ("mid", mid, {"after": ["start"]}), ("end", make_task("end"), {"after": ["mid"]})])
    make_task("other")
    submission = engine.submit(job)
    assert wildcards(diagrams.submission_graph(submission))["mid*"]["tasks"] is None
    engine.run_node(submission.ready[0])  # start runs and promises the shape
    submission.refresh_from_db()
    assert wildcards(diagrams.submission_graph(submission))["mid*"]["tasks"] == ["end", "mid", "start"]
