"""Dynamic workflows: the control channel, promises, wildcards, the gradient examples."""
import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from hypothesis import given, settings, strategies as st

from execution import diagrams, engine
from execution.local import SynchronousRunner
from execution.mutations import GraphState, OperationError, PromiseBroken, parse_lines, plan, promise_holds
from execution.models import Submission
from jobs.models import Job
from tests.factories import make_job, make_task

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TASKS = {"A", "B", "M", "X"}


def state(**nodes):
    """GraphState from key=task pairs in a chain a -> b -> ..., all pending except the first (running)."""
    keys = list(nodes)
    statuses = {key: ("running" if index == 0 else "pending") for index, key in enumerate(keys)}
    return GraphState({key: (nodes[key], statuses[key]) for key in keys}, set(zip(keys, keys[1:])))


def run_plan(graph, *operations, dynamic=True, promises=()):
    return plan(graph, list(operations), node="a", dynamic=dynamic, tasks=TASKS, promises=list(promises))


# --- the control channel, on plain data -----------------------------------------------------------


def test_add_node_defaults_to_running_after_the_adding_node():
    result = run_plan(state(a="A", b="B"), {"op": "add_node", "key": "m", "task": "M", "before": ["b"]})
    assert result.nodes == [{"key": "m", "task": "M", "params": {}}]
    assert result.edges == [("a", "m"), ("m", "b")]


@pytest.mark.parametrize(
    "operation, message",
    [
        ({"op": "add_node", "key": "m", "task": "NOPE"}, "unknown task 'NOPE'"),
        ({"op": "add_node", "key": "b", "task": "M"}, "duplicate key 'b'"),
        ({"op": "add_node", "key": "m", "task": "M", "after": ["b"], "before": ["a"]}, "an edge into node 'a', which has already started"),
        ({"op": "add_edge", "from": "b", "to": "a"}, "which has already started"),
        ({"op": "add_edge", "from": "c", "to": "b"}, "a cycle through 'c' and 'b'"),
        ({"op": "add_edge", "from": "a", "to": "zz"}, "no node 'zz'"),
        ({"op": "add_node", "key": "../x", "task": "M"}, "'key' must be a name"),
        ({"op": "explode"}, "unknown operation 'explode'"),
        ({"op": "output", "name": "n"}, "'value' is missing"),
        ({"op": "style", "node": "a"}, "give 'color' and/or 'label'"),
        ({"op": "promise", "kind": "sometimes"}, "unknown promise kind 'sometimes'"),
    ],
)
def test_bad_operations_are_refused_naming_the_operation(operation, message):
    with pytest.raises(OperationError, match=message) as caught:
        run_plan(state(a="A", b="B", c="X"), operation)
    assert json.dumps(operation, sort_keys=True)[:40] in str(caught.value)


def test_a_cycle_made_of_edges_added_earlier_in_the_same_step_is_refused():
    """Reachability sees the edges the step's own earlier operations added (kept up to date as they come)."""
    graph = state(a="A", b="B", c="X", d="X")  # a -> b -> c -> d
    with pytest.raises(OperationError, match="a cycle through 'm' and 'b'"):
        run_plan(graph, {"op": "add_node", "key": "m", "task": "M", "after": ["c"], "before": ["d"]}, {"op": "add_edge", "from": "m", "to": "b"})


def test_many_nodes_between_two_take_one_pass_over_the_edges():
    """A fan-out of 5,000 added by one step: each add_node checks for a cycle from the join, which
    must not rebuild the graph's adjacency each time (that made 10,000 instances cost O(N²))."""
    graph = state(a="A", b="B")
    operations = [{"op": "add_node", "key": f"m{index}", "task": "M", "before": ["b"]} for index in range(5000)]
    result = run_plan(graph, *operations)
    assert len(result.nodes) == 5000 and len(result.edges) == 10000
    with pytest.raises(OperationError, match="a cycle through 'm4999' and 'b'"):
        run_plan(graph, *operations, {"op": "add_node", "key": "back", "task": "M", "after": ["b"], "before": ["m4999"]})


def test_a_static_task_that_grows_the_graph_breaks_a_promise():
    with pytest.raises(PromiseBroken, match="not dynamic"):
        run_plan(state(a="A"), {"op": "add_node", "key": "m", "task": "M"}, dynamic=False)


def test_a_static_task_may_still_send_outputs_and_styles():
    result = run_plan(state(a="A"), {"op": "output", "name": "n", "value": [1, 2]}, {"op": "style", "node": "a", "color": "red"}, dynamic=False)
    assert result.outputs == {"n": [1, 2]} and result.styles == [{"node": "a", "color": "red"}]


@pytest.mark.parametrize(
    "promise, operation",
    [
        ({"kind": "no_new_nodes"}, {"op": "add_node", "key": "m", "task": "M"}),
        ({"kind": "no_new_edges"}, {"op": "add_edge", "from": "a", "to": "c"}),
        ({"kind": "only_tasks", "tasks": ["M"]}, {"op": "add_node", "key": "x", "task": "X"}),
        ({"kind": "no_edges_from", "nodes": ["a"]}, {"op": "add_node", "key": "m", "task": "M"}),
        ({"kind": "no_edges_to", "nodes": ["c"]}, {"op": "add_edge", "from": "a", "to": "c"}),
        ({"kind": "max_nodes", "value": 3}, {"op": "add_node", "key": "m", "task": "M"}),
    ],
)
def test_each_promise_kind_refuses_what_it_forbids(promise, operation):
    with pytest.raises(PromiseBroken) as caught:
        run_plan(state(a="A", b="B", c="X"), operation, promises=[promise])
    assert caught.value.promise == promise and promise["kind"] in str(caught.value) and operation["op"] in str(caught.value)


def test_a_runtime_promise_binds_later_operations_of_the_same_step():
    with pytest.raises(PromiseBroken, match="no_new_nodes"):
        run_plan(state(a="A"), {"op": "promise", "kind": "no_new_nodes"}, {"op": "add_node", "key": "m", "task": "M"})


def test_control_lines_must_be_json_objects():
    assert parse_lines('{"op": "output", "name": "x", "value": 1}\n\n') == [{"op": "output", "name": "x", "value": 1}]
    with pytest.raises(OperationError, match="control line 2 is not JSON"):
        parse_lines('{"op": "output"}\nnot json')
    with pytest.raises(OperationError, match="control line 1 must be a JSON object"):
        parse_lines("[1, 2]")


# --- property: accepted operations never break an active promise ------------------------------------

keys = st.sampled_from(["a", "b", "c", "m1", "m2", "m3", "x1", "x2"])
operations = st.one_of(
    st.builds(lambda k, t, after, before: {"op": "add_node", "key": k, "task": t, "after": after, "before": before},
              keys, st.sampled_from(sorted(TASKS)), st.lists(keys, max_size=2), st.lists(keys, max_size=2)),
    st.builds(lambda s, t: {"op": "add_edge", "from": s, "to": t}, keys, keys),
)
promise_lists = st.lists(
    st.one_of(
        st.just({"kind": "no_new_nodes"}),
        st.just({"kind": "no_new_edges"}),
        st.builds(lambda tasks: {"kind": "only_tasks", "tasks": sorted(tasks)}, st.sets(st.sampled_from(sorted(TASKS)), min_size=1)),
        st.builds(lambda nodes: {"kind": "no_edges_from", "nodes": sorted(nodes)}, st.sets(keys, min_size=1)),
        st.builds(lambda nodes: {"kind": "no_edges_to", "nodes": sorted(nodes)}, st.sets(keys, min_size=1)),
        st.builds(lambda n: {"kind": "max_nodes", "value": n}, st.integers(3, 7)),
        st.builds(
            lambda pairs: {"kind": "only_edges", "edges": sorted(map(list, pairs))},
            st.sets(st.tuples(st.sampled_from(sorted(TASKS)), st.sampled_from(sorted(TASKS))), min_size=1),
        ),
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(promise_lists, st.lists(operations, max_size=12))
def test_no_sequence_of_accepted_operations_breaks_an_active_promise(promises, sequence):
    initial = state(a="A", b="B", c="X")
    current = initial
    for operation in sequence:
        try:
            result = run_plan(current, operation, promises=promises)
        except (OperationError, PromiseBroken):
            continue
        current = current.copy()
        current.nodes.update({item["key"]: (item["task"], "pending") for item in result.nodes})
        current.edges.update(result.edges)
    for promise in promises:
        assert promise_holds(promise, initial, current), (promise, current)


# --- the gradient, end to end --------------------------------------------------------------------------


@pytest.fixture
def gradient(db):
    call_command("loadjobs", str(EXAMPLES / "dynamic.yaml"), stdout=open("/dev/null", "w"))


def final_graph(submission):
    nodes = {node.key: node.task.name for node in submission.nodes.select_related("task")}
    edges = set(submission.edges.values_list("source__key", "target__key"))
    return nodes, edges


def test_predetermined_always_makes_the_same_graph(gradient):
    graphs = {repr(final_graph(s)) for s in SynchronousRunner("predetermined").run(n=20)}
    assert len(graphs) == 1


def test_random_branch_always_ends_as_one_of_two_graphs(gradient):
    seen = set()
    for submission in SynchronousRunner("random_branch").run(n=20):
        assert submission.status == "complete", submission.last_message
        nodes, edges = final_graph(submission)
        assert nodes in ({"choose": "choose_branch", "branch_a": "branch_a"}, {"choose": "choose_branch", "branch_b": "branch_b"})
        assert edges == {("choose", next(key for key in nodes if key != "choose"))}
        seen.add(frozenset(nodes))
        assert submission.nodes.get(key="choose").outputs["chosen"] in nodes
    assert len(seen) == 2  # twenty coin flips all alike: about one chance in half a million


def test_random_map_is_always_start_m_star_end(gradient):
    counts = set()
    for submission in SynchronousRunner("random_map").run(n=20):
        assert submission.status == "complete", submission.last_message
        nodes, edges = final_graph(submission)
        maps = sorted(key for key, task in nodes.items() if task == "map_m")
        assert set(nodes) == {"start", "end", *maps}
        assert edges == {("start", "end")} | {("start", m) for m in maps} | {(m, "end") for m in maps}
        end = submission.nodes.get(key="end")
        assert all(end.started_at >= node.finished_at for node in submission.nodes.filter(key__in=maps))
        counts.add(len(maps))
    assert len(counts) > 1


def test_the_job_picture_shows_what_may_still_come(gradient):
    graph = diagrams.job_graph(Job.objects.get(name="random_map"))
    wildcards = [node for node in graph["nodes"] if node["kind"] == "wildcard"]
    assert [(node["key"], node["label"]) for node in wildcards] == [("start*", "map_m*")]
    possible = {(edge["from"], edge["to"]) for edge in graph["edges"] if edge["kind"] == "possible"}
    assert possible == {("start", "start*"), ("start*", "end")}
    assert not [node for node in diagrams.job_graph(Job.objects.get(name="predetermined"))["nodes"] if node["kind"] == "wildcard"]


def test_a_submission_shows_wildcards_until_its_dynamic_nodes_are_done(gradient):
    submission = engine.submit(Job.objects.get(name="random_branch"))
    labels = [node["label"] for node in diagrams.submission_graph(submission)["nodes"] if node["kind"] == "wildcard"]
    assert labels == ["branch_a* | branch_b*"]
    done = SynchronousRunner("random_branch").init().process()
    assert not [node for node in diagrams.submission_graph(done)["nodes"] if node["kind"] == "wildcard"]


def test_no_wildcard_where_promises_close_the_future(db):
    grower = make_task("grower", "true", dynamic=True)
    job = make_job("closed", steps=[grower])
    job.promises.create(kind="no_new_nodes", spec={})
    assert [node["kind"] for node in diagrams.job_graph(job)["nodes"]] == ["node"]
    open_job = make_job("open", steps=[("g", grower)])
    assert [node["label"] for node in diagrams.job_graph(open_job)["nodes"] if node["kind"] == "wildcard"] == ["?"]


def control(*operations):
    lines = "".join(json.dumps(operation) + "\\n" for operation in operations)
    return f"printf '{lines}' >> \"$SLUICE_CONTROL\""


def test_a_broken_promise_ends_the_submission_naming_promise_and_operation(db):
    make_task("M", "true")
    grower = make_task("grower", control({"op": "add_node", "key": "x", "task": "M"}), dynamic=True)
    job = make_job("strict", steps=[grower])
    job.promises.create(kind="max_nodes", spec={"value": 1})
    submission = SynchronousRunner(job).init().process()
    assert submission.status == "error"
    assert 'promise {"kind": "max_nodes", "value": 1} broken by {"key": "x", "op": "add_node", "task": "M"}' in submission.last_message
    assert submission.nodes.count() == 1


def test_a_static_task_growing_the_graph_fails_the_submission(db):
    make_task("M", "true")
    sneaky = make_task("sneaky", control({"op": "add_node", "key": "x", "task": "M"}))
    submission = SynchronousRunner(make_job("j", steps=[sneaky])).init().process()
    assert submission.status == "error" and "not dynamic" in submission.last_message


def test_operations_apply_atomically_or_not_at_all(db):
    make_task("M", "true")
    grower = make_task("grower", control({"op": "add_node", "key": "x", "task": "M"}, {"op": "add_node", "key": "y", "task": "NOPE"}), dynamic=True)
    submission = SynchronousRunner(make_job("j", steps=[grower])).init().process()
    assert submission.status == "error" and "unknown task 'NOPE'" in submission.last_message
    assert list(submission.nodes.values_list("key", flat=True)) == ["grower"]


def test_a_shape_promise_refuses_the_growth_no_completion_can_match(db):
    make_task("M", "true")
    grower = make_task("grower", control({"op": "add_node", "key": "x", "task": "M"}, {"op": "add_node", "key": "y", "task": "M", "after": ["x"]}), dynamic=True)
    job = make_job("shaped", steps=[grower])
    job.promises.create(kind="shape", spec={"pattern": "grower( M)?"})
    submission = SynchronousRunner(job).init().process()
    assert submission.status == "error"
    assert 'broken by {"after": ["x"], "key": "y", "op": "add_node", "task": "M"}' in submission.last_message
    assert "no path that begins 'grower M M' can match" in submission.last_message
    assert list(submission.nodes.values_list("key", flat=True)) == ["grower"]


def test_a_shape_the_early_check_cannot_read_is_checked_on_the_finished_graph(db):
    make_task("M", "true")
    operations = {"op": "add_node", "key": "x", "task": "M"}, {"op": "add_node", "key": "y", "task": "M", "after": ["x"]}
    grower = make_task("grower", control(*operations), dynamic=True)
    job = make_job("shaped", steps=[grower])
    job.promises.create(kind="shape", spec={"pattern": r"(grower)( M)?(?<=M|r)"})
    submission = SynchronousRunner(job).init().process()
    assert submission.status == "error"
    assert "path 'grower M M' does not match" in submission.last_message


def test_styles_and_outputs_reach_the_graph_and_the_node(db):
    task = make_task("painter", control({"op": "style", "node": "painter", "color": "purple", "label": "painted"}, {"op": "output", "name": "score", "value": 0.9}))
    submission = SynchronousRunner(make_job("j", steps=[task])).init().process()
    [node] = diagrams.submission_graph(submission)["nodes"]
    assert (node["color"], node["label"]) == ("purple", "painted")
    assert submission.nodes.get().outputs == {"score": 0.9}
    assert 'color=purple' in diagrams.to_dot(diagrams.submission_graph(submission))


@pytest.mark.parametrize("color", ["red", "purple", "grey50", "#ff0000", "#FF000080", ""])
def test_a_style_may_set_a_colour_name_or_rgb_hex(color):
    result = run_plan(state(a="A"), {"op": "style", "node": "a", "color": color})
    assert result.styles == [{"node": "a", "color": color}]


NOT_COLOURS = ['red" URL="javascript:alert(1)', "#ff000", "#ff0000ff00", "red:blue", "/x11/red", "0.5 0.5 0.5", "url(#x)", "<b>"]


@pytest.mark.parametrize("color", NOT_COLOURS)
def test_a_style_refuses_anything_but_a_colour_name_or_rgb_hex(color):
    rule = "'color' must be a colour name such as 'purple' or 'grey50', or '#rrggbb' or '#rrggbbaa'"
    with pytest.raises(OperationError, match=re.escape(f"{rule}, got {color!r}")):
        run_plan(state(a="A"), {"op": "style", "node": "a", "color": color})


def test_a_step_that_sends_a_colour_that_is_not_one_fails_and_nothing_is_styled(db):
    task = make_task("painter", control({"op": "style", "node": "painter", "color": "url(javascript:alert(1))", "label": "painted"}))
    submission = SynchronousRunner(make_job("j", steps=[task])).init().process()
    assert submission.status == "error" and "'color' must be a colour name" in submission.last_message
    assert submission.nodes.get().style == {}


def test_a_runtime_promise_is_kept_for_later_steps(db):
    make_task("M", "true")
    first = make_task("first", control({"op": "promise", "kind": "no_new_nodes"}))
    second = make_task("second", control({"op": "add_node", "key": "x", "task": "M"}), dynamic=True)
    submission = SynchronousRunner(make_job("j", steps=[first, second])).init().process()
    assert Submission.objects.get(pk=submission.pk).promises == [{"kind": "no_new_nodes", "by": "first"}]
    assert submission.status == "error" and "no_new_nodes" in submission.last_message
