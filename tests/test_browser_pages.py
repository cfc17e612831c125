"""Pages for daily use in a real browser: nothing scrolls sideways at 390 and 1366 px, keyboard reach, live lists, dark mode."""
import pytest
from playwright.sync_api import expect

from execution import engine
from execution.models import Submission
from tests.browser_support import DESKTOP, PHONE, chromium, fits, tab, visit, watch_policy  # noqa: F401 (fixtures)
from tests.factories import make_job, make_parameter, make_task

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LONG = "a_rather_long_parameter_name_that_could_push_a_page_wide"


@pytest.fixture
def catalogue(transactional_db):
    task = make_task("tally", "wc -l < $I1", in_glob=".input", out_glob=".count", description="Count lines.")
    make_parameter(task, "label", required=True, label="Report label", description="A name for the report.")
    make_parameter(task, "scale", type="int", default="2", label="Scale")
    make_parameter(task, "mode", type="choice", choices="fast,slow", default="fast")
    make_parameter(task, LONG[:60], label="A long one")
    second = make_task("summary", "cat $I1", in_glob=".count,.missing", stdout_glob=".txt")
    return make_job("line_report", steps=[("tally", task), ("summary", second)], description="Count the lines of a file.")


def log_in(tab, base, username, password, path="/accounts/login/"):
    visit(tab, f"{base}{path}")
    tab.get_by_label("User name" if path == "/accounts/login/" else "Username").fill(username)
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_load_state()


def both_widths(tab, url, check=None):
    """Visit ``url`` at phone and desktop width; each must fit. Returns the widths that did not."""
    wide = []
    for size in (PHONE, DESKTOP):
        tab.set_viewport_size(size)
        visit(tab, url) if check is None else check()
        if not fits(tab):
            wide.append((size["width"], tab.evaluate("document.documentElement.scrollWidth")))
    return wide


def test_public_pages_fit_phone_and_desktop(live_server, tab, catalogue, tmp_path):
    seen = watch_policy(tab)
    made = engine.submit(catalogue, params={"tally_label": "x" * 80}, input_data=b"a\n", submission_name="n" * 120)
    session_list = f"{live_server.url}/submissions/"
    for path in ("/", "/jobs/line_report/", f"/jobs/line_report/?again={made.uuid}"):
        assert both_widths(tab, f"{live_server.url}{path}") == [], path

    def errors():
        tab.goto(f"{live_server.url}/jobs/line_report/")
        tab.get_by_role("button", name="Submit to line_report").click()
        expect(tab.locator("#error-summary")).to_be_visible()

    assert both_widths(tab, None, errors) == []

    def missing():
        response = tab.goto(f"{live_server.url}/no/such/page/")
        assert response.status == 404
        expect(tab.get_by_role("heading", name="Not found")).to_be_visible()

    assert both_widths(tab, None, missing) == []
    # The anonymous list, after submitting through the form.
    upload = tmp_path / "lines.txt"
    upload.write_text("a\nb\n")
    tab.goto(f"{live_server.url}/jobs/line_report/")
    tab.get_by_label("Report label").fill("from the browser")
    tab.get_by_label("Input file").set_input_files(upload)
    tab.get_by_role("button", name="Submit to line_report").click()
    tab.wait_for_url("**/submissions/*-*/")
    assert both_widths(tab, session_list) == []
    expect(tab.get_by_role("heading", name="Recent in this browser")).to_be_visible()
    assert tab.locator("#submission-list tbody tr").count() == 1
    assert seen == []


def test_the_lists_and_token_page_fit_and_the_list_refreshes_its_active_rows(live_server, tab, catalogue, staff):
    seen = watch_policy(tab)
    for index in range(30):
        engine.submit(catalogue, params={"tally_label": "x"}, input_data=b"a\n", submission_name=f"run {index} " + "long" * 20, user=staff)
    running = Submission.objects.filter(user=staff).order_by("-id").first()
    Submission.objects.filter(pk=running.pk).update(status="running")
    log_in(tab, live_server.url, "staff", "pw-staff-123")
    assert both_widths(tab, f"{live_server.url}/submissions/?job=line_report") == []
    assert both_widths(tab, f"{live_server.url}/account/tokens/") == []
    tab.get_by_role("button", name="Make a new token").click()
    expect(tab.locator("#new-token")).to_be_visible()
    assert fits(tab)

    tab.goto(f"{live_server.url}/submissions/")
    badge = tab.locator(f'tr[data-uuid="{running.uuid}"] [data-field=status]')
    expect(badge).to_have_text("running")
    Submission.objects.filter(pk=running.pk).update(status="complete")
    expect(badge).to_have_text("complete", timeout=12_000)
    expect(badge).to_have_class("badge complete")
    assert tab.locator(f'tr[data-uuid="{running.uuid}"]').get_attribute("data-active") is None
    assert seen == []


def test_admin_task_and_job_pages_fit(live_server, tab, catalogue, staff):
    seen = watch_policy(tab)
    log_in(tab, live_server.url, "staff", "pw-staff-123", path="/admin/login/")
    expect(tab.locator("#site-name")).to_have_text("Sluice administration")
    task = catalogue.steps.get(key="tally").task
    for path in (f"/admin/jobs/task/{task.pk}/change/", f"/admin/jobs/job/{catalogue.pk}/change/", "/admin/jobs/job/import/", "/admin/"):
        assert both_widths(tab, f"{live_server.url}{path}") == [], path
    # The job page names what submitters send and warns of the step reading '.missing'.
    visit(tab, f"{live_server.url}/admin/jobs/job/{catalogue.pk}/change/")
    expect(tab.locator(".rest-names")).to_contain_text("tally_label")
    expect(tab.locator(".field-input_check")).to_contain_text("reads '.missing'")
    assert seen == []


def test_the_form_is_reachable_by_keyboard_and_the_summary_links_to_fields(live_server, tab, catalogue):
    tab.goto(f"{live_server.url}/jobs/line_report/")
    reached = []
    for _ in range(60):
        tab.keyboard.press("Tab")
        reached.append(tab.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
        if reached[-1] == "Submit to line_report":
            break
    assert "id_input_data" in reached and "id_tally_label" in reached and reached[-1] == "Submit to line_report", reached
    tab.keyboard.press("Enter")
    summary = tab.locator("#error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()  # web/static/web/form.js: the keyboard starts at the list of what to fix
    link = summary.get_by_role("link", name="Report label")
    link.focus()
    tab.keyboard.press("Enter")
    assert tab.evaluate("location.hash") == "#id_tally_label"
    # The file field says the file must be chosen again only when one had been chosen.
    assert tab.locator("#file-again").count() == 0


def test_a_chosen_file_is_asked_for_again_after_an_error(live_server, tab, catalogue, tmp_path):
    upload = tmp_path / "lines.txt"
    upload.write_text("a\nb\n")
    tab.goto(f"{live_server.url}/jobs/line_report/")
    tab.get_by_label("Input file").set_input_files(upload)
    tab.get_by_role("button", name="Submit to line_report").click()
    expect(tab.locator("#file-again")).to_contain_text("Choose the file again")


def test_dark_mode_keeps_pages_and_diagrams_readable(live_server, chromium, catalogue):
    context = chromium.new_context(viewport=DESKTOP, color_scheme="dark")
    page = context.new_page()
    try:
        visit(page, f"{live_server.url}/jobs/line_report/")
        colours = page.evaluate("""() => {
            const body = getComputedStyle(document.body);
            const svg = document.querySelector('.diagram svg');
            return [body.backgroundColor, body.color, svg ? getComputedStyle(svg).backgroundColor : null];
        }""")
        assert colours[0] == "rgb(17, 24, 39)" and colours[1] == "rgb(229, 231, 235)"
        assert colours[2] == "rgb(249, 250, 251)"  # the diagram keeps a light card
    finally:
        context.close()


def tab_until(tab, wanted, presses=80):
    """Press Tab until the focused element's accessible text or id is ``wanted``; return what was reached."""
    reached = []
    for _ in range(presses):
        tab.keyboard.press("Tab")
        reached.append(tab.evaluate("document.activeElement.id || document.activeElement.textContent.trim().replace(/\\s+/g, ' ')"))
        if reached[-1] == wanted:
            break
    return reached


def test_the_list_filters_run_again_and_tokens_are_reachable_by_keyboard(live_server, tab, catalogue, staff):
    made = engine.submit(catalogue, params={"tally_label": "x"}, input_data=b"a\n", submission_name="keyboard", user=staff)
    log_in(tab, live_server.url, "staff", "pw-staff-123")
    tab.goto(f"{live_server.url}/submissions/")
    reached = tab_until(tab, "Run again line_report keyboard")
    assert {"id_q", "id_status", "id_job", "id_made_from", "id_made_to", "Filter"} <= set(reached), reached
    assert reached[-1] == "Run again line_report keyboard", reached
    tab.keyboard.press("Enter")
    tab.wait_for_url(f"**/jobs/line_report/?again={made.uuid}")
    expect(tab.get_by_label("Report label")).to_have_value("x")

    tab.goto(f"{live_server.url}/account/tokens/")
    assert tab_until(tab, "Make a new token")[-1] == "Make a new token"
    tab.keyboard.press("Enter")
    expect(tab.locator("#new-token")).to_be_visible()
    prefix = tab.locator("#tokens code").first.text_content().rstrip("…")
    assert tab_until(tab, f"Revoke {prefix}")[-1] == f"Revoke {prefix}"
    tab.keyboard.press("Enter")
    expect(tab.locator(".flash")).to_contain_text("Revoked the token")
    expect(tab.locator("#tokens")).to_have_count(0)
