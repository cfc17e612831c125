"""Promises judged as mutations are proposed: shapes on an automaton, only_edges, components, fixed styles."""
import json
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from hypothesis import given, settings, strategies as st

from execution.local import SynchronousRunner
from execution.mutations import GraphState, OperationError, PromiseBroken, future_broken, plan, shape_holds
from jobs import shapes
from jobs.promises import PromiseError, parse_promise
from tests.factories import make_job, make_task

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TASKS = {"A", "B", "M", "N", "J", "K", "X", "D"}


def graph(chain, growing=(), optional=(), extra_edges=()):
    """GraphState of a chain ``[(key, task, status), ...]`` with the nodes that may still grow it."""
    nodes = {key: (task, status) for key, task, status in chain}
    keys = [key for key, _, _ in chain]
    return GraphState(nodes, set(zip(keys, keys[1:])) | set(extra_edges), set(growing), set(optional))


def run_plan(state, *operations, promises=(), dynamic_tasks=frozenset({"D"})):
    return plan(state, list(operations), node="a", dynamic=True, tasks=TASKS, promises=list(promises), dynamic_tasks=dynamic_tasks)


A_B = [("a", "A", "running"), ("b", "B", "pending")]


def add(key, task, **fields):
    return {"op": "add_node", "key": key, "task": task, **fields}


# --- the automaton -------------------------------------------------------------------------------


def test_a_prefix_that_can_still_grow_is_not_judged_finished():
    shape = shapes.compile("A( M)* B")
    assert shapes.can_complete(shape, ["A", "M"], open_end=True)
    assert not shapes.can_complete(shape, ["A", "M"])
    assert not shapes.can_complete(shape, ["A", "X"], open_end=True)
    assert shapes.can_complete(shape, ["M", "B"], open_start=True)


def test_an_optional_step_may_drop_out_of_the_path():
    shape = shapes.compile("A B")
    assert shapes.can_complete(shape, ["A", ("X", True), "B"])
    assert not shapes.can_complete(shape, ["A", ("X", False), "B"])


def test_allowed_next_names_the_tasks_that_keep_a_match_possible():
    assert shapes.allowed_next(shapes.compile("start (left|right) end"), ["start"], {"left", "right", "end", "lefty"}) == {"left", "right"}


def test_a_task_name_counts_only_where_the_pattern_lets_a_name_end():
    shape = shapes.compile("ab( c)*")
    assert not shapes.can_complete(shape, ["a"], open_end=True)  # "ab" may follow, but no node of task "a"
    assert shapes.can_complete(shape, ["ab", "c"]) and not shapes.may_appear(shape, "a")


def test_names_are_the_task_names_a_matching_path_may_hold_or_none_when_endless():
    assert shapes.names(shapes.compile("start (left|right)( mid)* end")) == {"start", "left", "right", "mid", "end"}
    assert shapes.names(shapes.compile(r"x\w+")) is None and shapes.names(shapes.compile("[^ ]")) is None
    assert shapes.may_appear(shapes.compile(r"x.*"), "a")  # as in "x a"


def test_patterns_the_automaton_cannot_read_are_left_to_the_end():
    assert shapes.compile(r"(A)( \1)*") is None and shapes.compile("A|^B") is None


def test_anchors_at_the_very_ends_mean_what_a_full_match_means():
    assert shapes.can_complete(shapes.compile("^A( M)*$"), ["A", "M"]) and not shapes.can_complete(shapes.compile("^A$"), ["A", "M"])
    assert shapes.can_complete(shapes.compile(r"A\$"), ["A$"])  # an escaped dollar is a character


# --- shape, as mutations are proposed ----------------------------------------------------------


def test_a_shape_refuses_the_operation_after_which_no_completion_can_match():
    promise = {"kind": "shape", "pattern": "A( M)?"}
    with pytest.raises(PromiseBroken) as caught:
        run_plan(graph([("a", "A", "running")]), add("x", "M"), add("y", "M", after=["x"]), promises=[promise])
    assert caught.value.promise == promise and caught.value.operation["key"] == "y"
    assert "no path that begins 'A M M' can match" in str(caught.value)


def test_a_shape_accepts_what_a_node_still_growing_could_complete():
    # b (dynamic, pending) may still add the B the pattern ends with, after m.
    state = graph([("a", "A", "running"), ("b", "D", "pending")], growing={"b"})
    result = run_plan(state, add("m", "M"), promises=[{"kind": "shape", "pattern": "A D|A M( B)?"}])
    assert [node["key"] for node in result.nodes] == ["m"]


def test_a_shape_refuses_a_prefix_that_nothing_can_repair():
    state = graph(A_B, growing={"b"})
    with pytest.raises(PromiseBroken, match="no path that begins 'A X' can match"):
        run_plan(state, add("x", "X", before=["b"]), promises=[{"kind": "shape", "pattern": "A( M)* B"}])


def test_a_node_that_may_still_be_skipped_does_not_doom_a_shape():
    state = graph([("a", "A", "running"), ("c", "X", "pending"), ("b", "B", "pending")], optional={"c"})
    assert future_broken({"kind": "shape", "pattern": "A B|A M B"}, state) is None
    state.optional = set()
    assert "no path that begins 'A X'" in future_broken({"kind": "shape", "pattern": "A B|A M B"}, state)


def test_a_finished_path_that_does_not_match_dooms_a_shape():
    state = graph([("a", "A", "running"), ("b", "B", "pending")])
    assert "path 'A B' does not match" in future_broken({"kind": "shape", "pattern": "A B M|A"}, state)
    state.growing = {"b"}  # b may still add the M after itself
    assert future_broken({"kind": "shape", "pattern": "A B M|A"}, state) is None


def test_a_new_dynamic_node_keeps_the_future_open():
    promise = {"kind": "shape", "pattern": "A D M"}
    assert run_plan(graph([("a", "A", "running")]), add("d", "D"), promises=[promise]).nodes
    with pytest.raises(PromiseBroken):
        run_plan(graph([("a", "A", "running")]), add("d", "D"), promises=[promise], dynamic_tasks=set())


# --- only_edges --------------------------------------------------------------------------------


def test_only_edges_allows_the_promised_task_pairs_only():
    promise = {"kind": "only_edges", "edges": [["A", "M"], ["M", "B"]]}
    result = run_plan(graph(A_B), add("m", "M", before=["b"]), promises=[promise])
    assert result.edges == [("a", "m"), ("m", "b")]
    with pytest.raises(PromiseBroken, match="edge a -> x joins tasks A -> X"):
        run_plan(graph(A_B), add("x", "X"), promises=[promise])


# --- component -----------------------------------------------------------------------------------

COMPONENT = {"kind": "component", "from": "a", "to": "b", "alternatives": ["N M", "J K"]}


def test_a_component_accepts_a_region_of_one_alternative():
    result = run_plan(graph(A_B), add("n", "N"), add("m", "M", after=["n"], before=["b"]), promises=[COMPONENT])
    assert len(result.nodes) == 2


def test_a_component_refuses_a_region_that_mixes_alternatives():
    with pytest.raises(PromiseBroken) as caught:
        run_plan(graph(A_B), add("n", "N"), add("k", "K", after=["n"], before=["b"]), promises=[COMPONENT])
    assert caught.value.operation["key"] == "k" and "between 'a' and 'b'" in str(caught.value)


def test_a_component_ignores_paths_that_do_not_reach_its_end():
    assert run_plan(graph(A_B), add("x", "X"), promises=[COMPONENT]).nodes


# --- fixed_style ---------------------------------------------------------------------------------


def test_fixed_style_refuses_styling_the_named_nodes_only():
    promise = {"kind": "fixed_style", "nodes": ["b"]}
    assert run_plan(graph(A_B), {"op": "style", "node": "a", "color": "red"}, promises=[promise]).styles
    with pytest.raises(PromiseBroken, match="node 'b' keeps its colour and label"):
        run_plan(graph(A_B), {"op": "style", "node": "b", "label": "new"}, promises=[promise])


# --- runtime promises constrain what comes from now on -----------------------------------------


def test_a_runtime_promise_of_no_more_edges_into_a_node_that_has_some_is_accepted():
    result = run_plan(graph(A_B), {"op": "promise", "kind": "no_edges_to", "nodes": ["b"]})
    assert result.promises == [{"kind": "no_edges_to", "nodes": ["b"]}]
    with pytest.raises(PromiseBroken, match="ends at 'b'"):
        run_plan(graph(A_B), {"op": "promise", "kind": "no_edges_to", "nodes": ["b"]}, add("m", "M", before=["b"]))


def test_a_runtime_shape_must_still_be_possible_on_the_graph_as_it_is():
    with pytest.raises(PromiseBroken, match="no path that begins 'A B' can match"):
        run_plan(graph(A_B), {"op": "promise", "kind": "shape", "pattern": "A M"})
    assert run_plan(graph(A_B), {"op": "promise", "kind": "shape", "pattern": "A( M)* B"}).promises


def test_a_step_may_promise_a_shape_and_then_grow_into_it():
    state = graph([("a", "A", "running")])
    result = run_plan(state, {"op": "promise", "kind": "shape", "pattern": "A (B|M)"}, add("m", "M"))
    assert result.promises and result.nodes
    with pytest.raises(PromiseBroken) as caught:
        run_plan(state, {"op": "promise", "kind": "shape", "pattern": "A (B|M)"}, add("x", "X"))
    assert caught.value.operation["key"] == "x"


def test_a_step_that_does_not_grow_the_graph_is_not_blamed_for_its_shape():
    doomed = {"kind": "shape", "pattern": "A M"}
    result = run_plan(graph(A_B), {"op": "promise", "kind": "no_new_nodes"}, {"op": "output", "name": "n", "value": 1}, promises=[doomed])
    assert result.promises == [{"kind": "no_new_nodes"}]


def test_a_runtime_component_binds_the_rest_of_the_step():
    promise = {"op": "promise", **COMPONENT}
    with pytest.raises(PromiseBroken, match="component"):
        run_plan(graph(A_B), promise, add("x", "X", before=["b"]))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"kind": "only_edges", "edges": [["A"]]}, "pairs"),
        ({"kind": "component", "from": "a", "to": "b", "alternatives": []}, "alternatives"),
        ({"kind": "component", "from": "a", "to": "b", "alternatives": ["("]}, "not a valid regular expression"),
        ({"kind": "fixed_style"}, "needs 'nodes'"),
    ],
)
def test_malformed_new_promises_are_refused(data, message):
    with pytest.raises(PromiseError, match=message):
        parse_promise(data)


# --- end to end, with real step processes ---------------------------------------------------------


def control(*operations):
    lines = "".join(json.dumps(operation) + "\\n" for operation in operations)
    return f"printf '{lines}' >> \"$SLUICE_CONTROL\""


def grower_job(db, name, operations, promise, tasks=("M", "N", "K", "X")):
    for task in tasks:
        make_task(task, "true")
    grower = make_task("grower", control(*operations), dynamic=True)
    job = make_job(name, steps=[("a", grower), ("b", make_task("closer", "true"), {"after": ["a"]})])
    job.promises.create(kind=promise["kind"], spec={k: v for k, v in promise.items() if k != "kind"})
    return job


def assert_refused_before_anything_ran(submission, kind, key):
    assert submission.status == "error"
    assert f'"kind": "{kind}"' in submission.last_message and f'"key": "{key}"' in submission.last_message
    statuses = dict(submission.nodes.values_list("key", "status"))
    assert statuses == {"a": "failed", "b": "cancelled"}  # nothing the step added exists, so none of it ran


def test_a_shape_is_enforced_before_anything_the_step_added_runs(db):
    job = grower_job(db, "shaped", [add("m", "M", before=["b"])], {"kind": "shape", "pattern": "grower closer"})
    assert_refused_before_anything_ran(SynchronousRunner(job).init().process(), "shape", "m")


def test_only_edges_is_enforced_end_to_end(db):
    job = grower_job(db, "edged", [add("x", "X", before=["b"])], {"kind": "only_edges", "edges": [["grower", "M"], ["M", "closer"]]})
    assert_refused_before_anything_ran(SynchronousRunner(job).init().process(), "only_edges", "x")


def test_a_component_is_enforced_end_to_end(db):
    operations = [add("n", "N"), add("k", "K", after=["n"], before=["b"])]
    job = grower_job(db, "region", operations, {"kind": "component", "from": "a", "to": "b", "alternatives": ["N M", "J K"]})
    assert_refused_before_anything_ran(SynchronousRunner(job).init().process(), "component", "k")


def test_a_component_kept_completes(db):
    operations = [add("n", "N"), add("m", "M", after=["n"], before=["b"])]
    job = grower_job(db, "region_ok", operations, {"kind": "component", "from": "a", "to": "b", "alternatives": ["N M", "J K"]})
    submission = SynchronousRunner(job).init().process()
    assert submission.status == "complete", submission.last_message
    assert set(submission.nodes.values_list("status", flat=True)) == {"succeeded"}


def test_fixed_style_is_enforced_end_to_end(db):
    painter = make_task("painter", control({"op": "style", "node": "painter", "color": "red"}))
    job = make_job("plain", steps=[painter])
    job.promises.create(kind="fixed_style", spec={"nodes": ["painter"]})
    submission = SynchronousRunner(job).init().process()
    assert submission.status == "error"
    assert '"kind": "fixed_style"' in submission.last_message and '"op": "style"' in submission.last_message
    assert submission.nodes.get().style == {}


def test_the_must_have_cases_keep_their_promises_twenty_times_each(db):
    call_command("loadjobs", str(EXAMPLES / "dynamic.yaml"), stdout=open("/dev/null", "w"))
    began = time.monotonic()
    for job in ("predetermined", "random_branch", "random_map"):
        for submission in SynchronousRunner(job).run(n=20):
            assert submission.status == "complete", (job, submission.last_message)
    assert time.monotonic() - began < 240


# Each kind on a Dramatiq worker: (promise, the grower's operations, refused: the kind and key named, or None when kept)
ON_WORKERS = {
    "shape refused": ({"kind": "shape", "pattern": "grower closer"}, [add("m", "M", before=["b"])], "m"),
    "shape kept": ({"kind": "shape", "pattern": "grower( M)? closer"}, [add("m", "M", before=["b"])], None),
    "only_edges refused": ({"kind": "only_edges", "edges": [["grower", "M"], ["M", "closer"]]}, [add("x", "X", before=["b"])], "x"),
    "only_edges kept": ({"kind": "only_edges", "edges": [["grower", "M"], ["M", "closer"]]}, [add("m", "M", before=["b"])], None),
    "component refused": (COMPONENT, [add("n", "N"), add("k", "K", after=["n"], before=["b"])], "k"),
    "component kept": (COMPONENT, [add("n", "N"), add("m", "M", after=["n"], before=["b"])], None),
    "only_tasks refused": ({"kind": "only_tasks", "tasks": ["M"]}, [add("x", "X")], "x"),
    "max_nodes refused": ({"kind": "max_nodes", "value": 3}, [add("m", "M"), add("n", "N")], "n"),
    "no_edges_to refused": ({"kind": "no_edges_to", "nodes": ["b"]}, [add("m", "M", before=["b"])], "m"),
}


@pytest.mark.parametrize("promise, operations, refused", ON_WORKERS.values(), ids=ON_WORKERS.keys())
@pytest.mark.django_db(transaction=True)
def test_each_promise_kind_is_kept_or_refused_on_workers(worker, promise, operations, refused):
    from execution import dispatch, engine
    from tests.conftest import wait_for

    job = grower_job(None, "on_workers", operations, promise)
    submission = engine.submit(job)
    dispatch.start(submission)
    submission = wait_for(submission)
    if refused:
        assert_refused_before_anything_ran(submission, promise["kind"], refused)
    else:
        assert submission.status == "complete", submission.last_message
        assert set(submission.nodes.values_list("status", flat=True)) == {"succeeded"}


# --- property: on a graph that can no longer change, the automaton agrees with re.fullmatch ------

PATTERNS = ["A( M)* B", "A (M|X) B|A B", "A.*", "(A|M)( [ABMX])*", "A( M)?", "A M+ B", "[AB] X?( B)*"]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(PATTERNS),
    st.lists(st.sampled_from(["A", "B", "M", "X"]), min_size=1, max_size=6),
    st.sets(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=8),
    st.sets(st.integers(0, 5), max_size=2),
)
def test_on_a_finished_graph_the_early_check_agrees_with_the_end_check(pattern, tasks, pairs, skipped):
    nodes = {f"n{i}": (task, "skipped" if i in skipped else "succeeded") for i, task in enumerate(tasks)}
    edges = {(f"n{a}", f"n{b}") for a, b in pairs if a < b < len(tasks)}  # forward only: no cycle
    state = GraphState(nodes, edges, set(), set())
    assert (future_broken({"kind": "shape", "pattern": pattern}, state) is None) == shape_holds(pattern, state)


def test_a_runtime_component_must_lie_between_two_nodes_of_the_graph():
    with pytest.raises(OperationError, match="no node 'nope'"):
        run_plan(graph(A_B), {"op": "promise", **COMPONENT, "to": "nope"})
    with pytest.raises(OperationError, match="between two different nodes"):
        run_plan(graph(A_B), {"op": "promise", **COMPONENT, "to": "a"})
