"""The submission page and the pages under it: how it was run, step pages with logs, big fan-outs, approvals, confirmations."""
import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from execution import diagrams, dispatch, engine
from execution.local import SynchronousRunner
from execution.models import Edge, Message, Node, Result, Submission
from tests.factories import make_job, make_parameter, make_task

pytestmark = pytest.mark.django_db


def client_for(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def page_of(submission, suffix="", client=None, **query):
    response = (client or Client()).get(f"/submissions/{submission.uuid}/{suffix}", query)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


@pytest.fixture
def two_steps():
    """tally counts the upload's lines; report writes them as .json and .csv; both write to stdout and stderr."""
    tally = make_task("count", "echo counting >&2; wc -l < $I1", in_glob=".input", stdout_glob=".count")
    make_parameter(tally, "scale", type="int", default="2", label="Scale factor")
    make_parameter(tally, "tag", default="plain")
    report = make_task("report", "echo '{}' > $O1; echo a,b > $O2; echo reported", in_glob=".count", out_glob=".json,.csv")
    return make_job("two", steps=[("tally", tally), ("report", report)])


def fan_out(width, job_name="wide", statuses=("succeeded", "succeeded", "failed", "running")):
    """A running submission split -> M x width (added at run time by split) -> gather, made directly in the database."""
    split, m, gather = make_task("split", "true"), make_task("M", "true"), make_task("gather", "true")
    job = make_job(job_name, steps=[split, ("gather", gather, {"after": ["split"]})])
    now = timezone.now()
    submission = Submission.objects.create(job=job, status="running", started_at=now - timedelta(minutes=5))
    first = Node.objects.create(submission=submission, key="split", task=split, step=job.steps.get(key="split"), status="succeeded",
                                started_at=now - timedelta(minutes=5), finished_at=now - timedelta(minutes=4))
    last = Node.objects.create(submission=submission, key="gather", task=gather, step=job.steps.get(key="gather"), status="pending")
    middle = Node.objects.bulk_create(
        Node(submission=submission, key=f"split_{index}", task=m, added_by="split", params={"$INDEX": index}, status=statuses[index % len(statuses)],
             started_at=now - timedelta(minutes=4), finished_at=now - timedelta(minutes=1) if statuses[index % len(statuses)] != "running" else None)
        for index in range(width)
    )
    Edge.objects.bulk_create([Edge(submission=submission, source=first, target=node) for node in middle]
                             + [Edge(submission=submission, source=node, target=last) for node in middle])
    Result.objects.bulk_create(Result(submission=submission, node=node, name=f"{submission.uuid}.{node.key}.part", ending=".part",
                                      file=f"results/{submission.uuid}/{node.key}/x.part", size=10) for node in middle)
    Message.objects.bulk_create(Message(submission=submission, text=f"message {index}") for index in range(300))
    return submission


# --- big fan-outs ---------------------------------------------------------------------------


def test_a_ten_thousand_node_submission_page_takes_few_queries_and_stays_small(django_assert_max_num_queries):
    submission = fan_out(10_000)
    with django_assert_max_num_queries(25):
        page = page_of(submission)
    assert len(page) < 60_000, len(page)
    assert page.count('data-node="') == 2  # split and gather; the 10,000 are one row
    assert re.search(r'<tr class="group" data-group="split">.*?×10000', page, re.S)
    assert "2500 running" in page and "2500 failed" in page and "5000 succeeded" in page
    assert "7501 of 10002 steps done" in page and 'value="7501" max="10002"' in page  # split, and 7,500 instances
    assert "10000 results" in page
    with django_assert_max_num_queries(25):
        fragment = page_of(submission, "live/")
    assert len(fragment) < 60_000 and "<html" not in fragment


def test_a_big_group_is_listed_fifty_at_a_time_and_by_status(django_assert_max_num_queries):
    submission = fan_out(600)
    with django_assert_max_num_queries(15):
        listed = page_of(submission, "nodes/", by="split", task="M")
    assert listed.count('data-node="') == 50 and "Page 1 of 12 (600 steps)" in listed
    assert 'data-node="split_0"' in listed and f"split_0.part" in listed
    second = page_of(submission, "nodes/", by="split", task="M", page="2")
    assert 'data-node="split_50"' in second and 'data-node="split_0"' not in second
    failed = page_of(submission, "nodes/", by="split", task="M", status="failed")
    assert "Page 1 of 3 (150 steps)" in failed and 'data-node="split_2"' in failed and 'data-node="split_0"' not in failed


def test_the_diagram_links_boxes_to_their_step_pages_and_a_collapsed_box_to_its_list():
    submission = fan_out(40)
    page = page_of(submission)
    assert f'xlink:href="/submissions/{submission.uuid}/nodes/split/"' in page
    assert f'xlink:href="/submissions/{submission.uuid}/nodes/?by=split&amp;task=M"' in page


def test_the_message_log_is_paged_newest_first_with_older_links():
    submission = fan_out(3)
    page = page_of(submission)
    assert "message 299" in page and "message 250" in page and "message 249" not in page
    older = re.search(r'href="\?before=(\d+)"', page).group(1)
    second = page_of(submission, before=older)
    assert "message 249" in second and "message 200" in second and "message 250" not in second
    assert 'href="?"' in second  # back to the newest
    # The live part polled by the page keeps to the page asked for.
    assert "message 249" in page_of(submission, "live/", before=older)


# --- how it was run --------------------------------------------------------------------------


def test_the_page_shows_parameters_with_their_labels_and_the_uploads_own_name(client, two_steps):
    upload = SimpleUploadedFile("weekly lines.txt", b"a\nb\n")
    response = client.post("/jobs/two/", {"count_scale": "5", "input_data": upload})
    submission = Submission.objects.get()
    assert response.status_code == 302 and submission.upload_name == "weekly lines.txt"
    page = page_of(submission)
    assert "Scale factor" in page and "<code>count_scale</code>" in page and "<code>5</code>" in page
    assert "count_tag" in page and "<code>plain</code>" in page
    assert "<code>weekly lines.txt</code>" in page


def test_results_are_grouped_by_step_with_readable_names(two_steps):
    submission = SynchronousRunner(two_steps, input=b"x\ny\n").init().process()
    assert submission.status == "complete", submission.last_message
    page = page_of(submission)
    tally = page.index("From <a href=\"/submissions/%s/nodes/tally/\"" % submission.uuid)
    report = page.index("From <a href=\"/submissions/%s/nodes/report/\"" % submission.uuid)
    assert page.index(">tally.count</a>") > tally and report > tally
    assert page.index(">report.json</a>") > report and page.index(">report.csv</a>") > report
    assert f"<code>{submission.uuid}.json</code>" in page  # the stored name, as steps see it


def test_a_finished_submission_says_how_long_it_took_and_links_run_again_download_all_and_provenance(two_steps):
    submission = SynchronousRunner(two_steps, input=b"x\n").init().process()
    page = page_of(submission)
    assert re.search(r'took <strong id="total-time">\d+\.\d s</strong>', page)
    assert "2 of 2 steps done" in page
    assert f'href="/jobs/two/?again={submission.uuid}"' in page
    assert f'href="/api/submissions/{submission.uuid}/archive/"' in page
    assert f'href="/api/submissions/{submission.uuid}/ro-crate/"' in page
    assert page.count('class="st-succeeded"') == 2  # the timeline: a bar per step


def test_a_running_submission_shows_elapsed_time_and_an_estimate_from_past_runs(two_steps):
    now = timezone.now()
    for minutes in (10, 20, 30):
        Submission.objects.create(job=two_steps, status="complete", started_at=now - timedelta(hours=1), finished_at=now - timedelta(hours=1) + timedelta(minutes=minutes))
    running = engine.submit(two_steps, input_data=b"x\n")
    Submission.objects.filter(pk=running.pk).update(status="running", started_at=now - timedelta(minutes=5))
    running.refresh_from_db()
    page = page_of(running)
    assert re.search(r'running for <strong id="elapsed-time">5 min \d+ s</strong>', page)
    assert "typically takes 20 min 0 s" in page and re.search(r'about <strong id="time-left">1[45] min \d+ s</strong> left', page)
    assert "0 of 2 steps done" in page
    assert "ro-crate" not in page  # provenance only once it has finished


def test_a_branch_not_taken_says_so_in_the_table_and_the_diagram():
    yes, no = make_task("yes", "true"), make_task("no", "true")
    start = make_task("start", "true")
    job = make_job("branches", steps=[start, ("yes", yes, {"after": ["start"], "when": "1 == 2"}), ("no", no, {"after": ["start"]})])
    submission = SynchronousRunner(job).init().process()
    page = page_of(submission)
    row = re.search(r'<tr data-node="yes">.*?</tr>', page, re.S).group(0)
    assert "not taken" in row
    assert "not taken" in re.search(r"<svg.*?</svg>", page, re.S).group(0)
    assert "dashed grey" in page  # the legend


# --- the step page ----------------------------------------------------------------------------


def test_the_step_page_shows_the_command_the_logs_of_each_attempt_and_its_inputs_and_results(two_steps):
    submission = SynchronousRunner(two_steps, input=b"x\ny\n").init().process()
    tally = page_of(submission, "nodes/tally/")
    node = submission.nodes.get(key="tally")
    assert node.command and escape(node.command) in tally
    assert "Attempt 1 (latest)" in tally and ">counting\n</pre>" in tally
    assert f'href="/api/submissions/{submission.uuid}/nodes/tally/log/?attempt=1&amp;stream=stderr"' in tally
    assert ">upload.input</a>" in tally and ">tally.count</a>" in tally  # what it read, what it made
    report = page_of(submission, "nodes/report/")
    assert ">reported\n</pre>" in report  # a step that succeeded shows its output too
    assert ">tally.count</a>" in report and ">report.json</a>" in report


def test_a_long_log_shows_where_it_was_cut(settings):
    settings.SLUICE_LOG_MAX_BYTES = 2000
    job = make_job("loud", steps=[make_task("loud", "seq 1 5000")])
    submission = SynchronousRunner(job).init().process()
    page = page_of(submission, "nodes/loud/")
    assert re.search(r'<mark class="cut">… \d+ bytes cut …</mark>', page)
    assert '<pre class="log-text" data-stream="stdout">1\n2\n' in page and "\n5000\n</pre>" in page  # its head and its tail


def test_the_steps_table_keeps_a_message_to_one_line_and_the_step_page_has_it_all():
    job = make_job("fails", steps=[make_task("boom", "for i in $(seq 1 40); do echo line $i >&2; done; exit 3")])
    submission = SynchronousRunner(job).init().process()
    node = submission.nodes.get()
    assert node.status == "failed" and "\n" in node.message
    cell = re.search(r'<tr data-node="boom">.*?<td class="message">(.*?)</td>', page_of(submission), re.S).group(1)
    assert "\n" not in cell.strip() and len(cell.strip()) <= 130
    assert "line 40" in page_of(submission, "nodes/boom/") and "line 1\n" in page_of(submission, "nodes/boom/")
    # The submission page says what failed, with the end of its error output, where a phone shows it.
    failed = re.search(r'<section class="failed".*?</section>', page_of(submission), re.S).group(0)
    assert "<code>boom</code>" in failed and "line 36\nline 37\nline 38\nline 39\nline 40</pre>" in failed


def test_a_step_page_is_for_those_who_may_see_the_submission(owner, other_user, two_steps):
    submission = SynchronousRunner(two_steps, input=b"x\n", user=owner).init().process()
    for suffix in ("nodes/tally/", "nodes/", "cancel/confirm/", "nodes/tally/restart/confirm/"):
        url = f"/submissions/{submission.uuid}/{suffix}"
        assert client_for(None).get(url).status_code == 404, url
        assert client_for(other_user).get(url).status_code == 404, url
        assert client_for(owner).get(url).status_code == 200, url
    assert client_for(owner).get(f"/submissions/{submission.uuid}/nodes/nope/").status_code == 404


# --- confirmations -----------------------------------------------------------------------------


def test_cancel_and_restart_ask_first_on_a_page_of_their_own_or_in_the_dialog(two_steps):
    submission = engine.submit(two_steps, input_data=b"x\n")
    page = page_of(submission)
    assert f'href="/submissions/{submission.uuid}/cancel/confirm/" data-confirm' in page and '<dialog id="confirm"' in page
    confirm = page_of(submission, "cancel/confirm/")
    assert f'action="/submissions/{submission.uuid}/cancel/"' in confirm and "<html" in confirm
    fragment = Client().get(f"/submissions/{submission.uuid}/cancel/confirm/", headers={"X-Requested-With": "fetch"}).content.decode()
    assert "<html" not in fragment and 'formmethod="dialog"' in fragment
    submission.refresh_from_db()
    assert submission.status == "submitted"  # asking changed nothing
    done = SynchronousRunner(two_steps, input=b"x\n").init().process()
    assert f'href="/submissions/{done.uuid}/nodes/tally/restart/confirm/" data-confirm' in page_of(done)
    assert f'action="/submissions/{done.uuid}/nodes/tally/restart/"' in page_of(done, "nodes/tally/restart/confirm/")


# --- approvals ----------------------------------------------------------------------------------


def waiting_on(task):
    job = make_job("approve", steps=[task, ("publish", make_task("publish", "true"), {"after": [task.name]})])
    submission = engine.submit(job)
    dispatch.start(submission)
    submission.refresh_from_db()
    assert submission.status == "waiting", submission.last_message
    return submission


def test_declared_choices_are_one_button_each_and_the_answer_is_shown_with_who_gave_it(owner):
    submission = waiting_on(make_task("ask", "true", input_prompt="Publish it?", input_choices=["yes", "no"]))
    Submission.objects.filter(pk=submission.pk).update(user=owner)
    client = client_for(owner)
    page = client.get(f"/submissions/{submission.uuid}/").content.decode()
    assert '<button type="submit" name="value" value="yes">yes</button>' in page and 'value="no">no</button>' in page
    assert 'name="value" required' not in page  # no free text where choices are declared
    refused = client.post(f"/submissions/{submission.uuid}/nodes/ask/input/", {"value": "maybe"}, follow=True).content.decode()
    assert "takes one of &#x27;yes&#x27;, &#x27;no&#x27;" in refused
    client.post(f"/submissions/{submission.uuid}/nodes/ask/input/", {"value": "yes"})
    page = client.get(f"/submissions/{submission.uuid}/").content.decode()
    assert re.search(r'<tr data-node="ask">.*answered <q>yes</q> by owner', page, re.S)
    assert "Answered <q>yes</q> by owner." in client.get(f"/submissions/{submission.uuid}/nodes/ask/").content.decode()


def test_a_prompt_without_choices_keeps_its_text_box():
    submission = waiting_on(make_task("ask", "true", input_prompt="Why?"))
    page = page_of(submission)
    assert '<label for="answer-ask">Why?</label>' in page and '<input id="answer-ask" name="value" required>' in page


def test_a_box_links_only_to_a_path_on_this_site():
    graph = {"nodes": [{"key": k, "task": k, "kind": "node", "status": "succeeded", "label": k} for k in ("a", "b", "c")], "edges": []}
    targets = {"a": "/submissions/x/nodes/a/", "b": "javascript:alert(1)", "c": "https://elsewhere.example/"}
    drawing = diagrams.to_svg(graph, "links", link=lambda node: targets[node["key"]])
    assert drawing.count("xlink:href=") == 1 and 'xlink:href="/submissions/x/nodes/a/"' in drawing
    assert diagrams.to_svg(graph, "links").count("xlink:href=") == 0  # the same drawing, cached, without links
