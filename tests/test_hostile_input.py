"""Bodies, paths and values as an attacker sends them: each gets a 400 (or 413) naming the field, and nothing is stored.

Bodies are written out as bytes, not through the test client's encoders, so
that they can hold what those encoders never make: JSON nested a thousand
levels deep, NaN and Infinity, NUL, raw multipart parts.
"""
import io

import pytest
from rest_framework.test import APIClient

from api import jsonstream
from execution import engine
from execution.models import Result, Submission
from tests.clients import errors
from tests.factories import make_job, make_parameter, make_task

pytestmark = pytest.mark.django_db

BOUNDARY = "sluice-test-boundary"


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def job(db):
    """A job with a string parameter ``t_p``, a float parameter ``t_f``, and a step that reads the upload."""
    task = make_task("t", "cat $I1", in_glob=".input")
    make_parameter(task, "p")
    make_parameter(task, "f", type="float", default="1.5")
    return make_job("j", steps=[task])


def post_json(api, body):
    return api.generic("POST", "/api/submissions/", body.encode() if isinstance(body, str) else body, content_type="application/json")


def multipart(*parts):
    """A multipart/form-data body from (name, value) and (name, filename, content) parts, all bytes or text."""
    out = io.BytesIO()
    for part in parts:
        name, *rest = (p.encode() if isinstance(p, str) else p for p in part)
        out.write(b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=\"" + name + b"\"")
        if len(rest) == 2:
            out.write(b"; filename=\"" + rest[0] + b"\"\r\nContent-Type: application/octet-stream")
        out.write(b"\r\n\r\n" + rest[-1] + b"\r\n")
    out.write(b"--" + BOUNDARY.encode() + b"--\r\n")
    return out.getvalue()


def post_multipart(api, *parts):
    return api.generic("POST", "/api/submissions/", multipart(*parts), content_type=f"multipart/form-data; boundary={BOUNDARY}")


def post_form(api, body):
    return api.generic("POST", "/api/submissions/", body, content_type="application/x-www-form-urlencoded")


def assert_refused(response, field, words, status=400):
    assert response.status_code == status, response.content[:500]
    found = errors(response)
    assert field in found, found
    assert words in " ".join(found[field]), found
    assert_nothing_stored()


def assert_nothing_stored():
    assert Submission.objects.count() == 0
    assert Result.objects.count() == 0


def stored_files(settings):
    return [path for path in settings.MEDIA_ROOT.rglob("*") if path.is_file()] if settings.MEDIA_ROOT.exists() else []


def nested(depth, leaf="1"):
    return "[" * depth + leaf + "]" * depth


# --- JSON: nesting -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 950, 5000, 200_000])
def test_json_nested_deeper_than_the_limit_is_refused_naming_the_field(api, job, depth):
    response = post_json(api, '{"job": "j", "input_data": "x", "t_p": ' + nested(depth) + "}")
    assert_refused(response, "t_p", "nested more than 64 levels deep")


def test_a_deep_body_with_no_field_is_refused_as_a_whole(api, job):
    assert_refused(post_json(api, nested(5000)), "non_field_errors", "nested more than 64 levels deep")


def test_the_depth_limit_is_a_setting(api, job, settings):
    settings.SLUICE_JSON_MAX_DEPTH = 3
    assert_refused(post_json(api, '{"job": "j", "t_p": [[[1]]]}'), "t_p", "nested more than 3 levels deep")
    settings.SLUICE_JSON_MAX_DEPTH = 64
    response = post_json(api, '{"job": "j", "t_p": ' + nested(63) + "}")
    assert response.status_code == 400 and "must be a single value" in errors(response)["t_p"][0]  # parsed, then refused as a list


def test_an_unclosed_deep_body_is_refused_without_recursion(api, job):
    assert_refused(post_json(api, '{"job": "j", "t_p": ' + "[" * 100_000), "t_p", "nested more than 64 levels deep")


# --- JSON: numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize("literal, words", [
    ("NaN", "is NaN; only finite numbers"),
    ("Infinity", "is Infinity; only finite numbers"),
    ("-Infinity", "is -Infinity; only finite numbers"),
    ("1e999", "too large for a 64-bit float"),
    ("-1e999", "too large for a 64-bit float"),
])
def test_json_numbers_that_are_not_finite_are_refused(api, job, literal, words):
    response = post_json(api, '{"job": "j", "input_data": "x", "t_f": ' + literal + "}")
    assert_refused(response, "t_f", words)


def test_a_non_finite_number_deep_in_a_field_is_refused(api, job):
    assert_refused(post_json(api, '{"job": "j", "t_p": {"a": [1, NaN]}}'), "t_p", "the number at t_p.a[1] is NaN")


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
def test_float_parameters_refuse_strings_that_are_not_finite(api, job, text):
    assert_refused(post_json(api, '{"job": "j", "input_data": "x", "t_f": "' + text + '"}'), "t_f", "must be a finite number")


def test_float_parameters_in_a_form_refuse_what_is_not_finite(api, job):
    assert_refused(post_multipart(api, ("job", "j"), ("input_data", "x"), ("t_f", "nan")), "t_f", "must be a finite number")
    assert_refused(post_form(api, "job=j&input_data=x&t_f=1e999"), "t_f", "must be a finite number")


def test_an_integer_with_too_many_digits_is_refused(api, job):
    assert_refused(post_json(api, '{"job": "j", "t_p": 1' + "0" * 5000 + "}"), "t_p", "more than 4300 digits")


# --- JSON: NUL ------------------------------------------------------------------------------


@pytest.mark.parametrize("body, field", [
    ('{"job": "j", "input_data": "x", "submission_name": "a\\u0000b"}', "submission_name"),
    ('{"job": "j\\u0000", "input_data": "x"}', "job"),
    ('{"job": "j", "input_data": "x", "t_p": "\\u0000"}', "t_p"),
    ('{"job": "j", "input_data": "x", "email": "a\\u0000@example.org"}', "email"),
    ('{"job": "j", "input_data": "x\\u0000y"}', "input_data"),
    ('{"job": "j", "input_data": "x", "t_p": ["ok", {"deep": "\\u0000"}]}', "t_p"),
    ('{"job": "j", "input_data": "x", "t\\u0000p": "1"}', "t\\u0000p"),
    ('{"job": "j", "input_data": "x", "t_p": {"k\\u0000": 1}}', "t_p"),
    ('{"job": "j", "input_data": "x", "submission_name": "a\x00b"}', "submission_name"),  # a raw NUL byte
])
def test_json_with_nul_in_any_string_or_key_is_refused(api, job, body, field):
    assert_refused(post_json(api, body), field, "contains NUL (\\u0000)")


def test_a_lone_surrogate_is_refused_naming_the_field(api, job):
    response = post_json(api, '{"job": "j", "submission_name": "\\ud800"}')
    assert_refused(response, "submission_name", "not valid Unicode text")
    assert "not valid Unicode text" in response.json()["detail"]


def test_a_body_that_is_not_utf8_is_refused(api, job):
    response = post_json(api, b'{"job": "j", "t_p": "\xff"}')
    assert response.status_code == 400 and "not UTF-8" in response.json()["detail"]
    assert_nothing_stored()


def test_a_large_json_upload_with_nul_at_its_end_stores_nothing(api, job, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000  # the text goes to a temporary file before the NUL is read
    response = post_json(api, '{"job": "j", "input_data": "' + "x" * 200_000 + '\\u0000"}')
    assert_refused(response, "input_data", "contains NUL")
    assert stored_files(settings) == []


# --- forms -----------------------------------------------------------------------------------


@pytest.mark.parametrize("parts, field", [
    ((("job", "j"), ("input_data", "x"), ("submission_name", "a\x00b")), "submission_name"),
    ((("job", "j\x00"), ("input_data", "x")), "job"),
    ((("job", "j"), ("input_data", "x"), ("t_p", "\x00")), "t_p"),
    ((("job", "j"), ("input_data", "x"), ("t\x00p", "1")), "t\\u0000p"),
    ((("job", "j"), ("input_data\x00", "f.txt", "x")), "input_data\\u0000"),
])
def test_multipart_fields_with_nul_are_refused(api, job, parts, field):
    assert_refused(post_multipart(api, *parts), field, "contains NUL (\\u0000)")


def test_a_multipart_file_may_hold_nul_and_its_name_chooses_nothing(api, job, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10  # to a temporary file, whose name Django would take from the client's
    response = post_multipart(api, ("job", "j"), ("input_data", "../x.t\x00xt", b"a\x00b\n"))
    assert response.status_code == 201, response.content
    submission = Submission.objects.get()
    with submission.results.get().file.open("rb") as handle:
        assert handle.read() == b"a\x00b\n"


@pytest.mark.parametrize("body, field", [
    ("job=j&input_data=x&submission_name=a%00b", "submission_name"),
    ("job=j%00&input_data=x", "job"),
    ("job=j&input_data=x&t_p=%00", "t_p"),
    ("job=j&input_data=x&t%00p=1", "t\\u0000p"),
])
def test_url_encoded_fields_with_nul_are_refused(api, job, body, field):
    assert_refused(post_form(api, body), field, "contains NUL (\\u0000)")


# --- paths, query strings, cookies -------------------------------------------------------------


@pytest.mark.parametrize("method, path", [
    ("get", "/api/jobs/%00/"),
    ("get", "/api/jobs/j%00/graph/"),
    ("post", "/api/submissions/{uuid}/nodes/%00/restart/"),
    ("post", "/api/submissions/{uuid}/nodes/t%00/input/"),
    ("get", "/api/submissions/{uuid}/nodes/t%00/log/"),
])
def test_nul_in_a_path_is_refused(api, job, method, path):
    submission = engine.submit(job, input_data=b"x")
    response = getattr(api, method)(path.format(uuid=submission.uuid))
    assert response.status_code == 400, response.content
    assert "contains NUL" in errors(response)["path"][0]


@pytest.mark.parametrize("query, field", [("format=%00", "format"), ("stream=%00", "stream"), ("attempt=1%00", "attempt"), ("x%00=1", "x\\u0000")])
def test_nul_in_a_query_string_is_refused(api, job, query, field):
    submission = engine.submit(job, input_data=b"x")
    response = api.get(f"/api/submissions/{submission.uuid}/nodes/t/log/?{query}")
    assert response.status_code == 400
    assert "contains NUL" in errors(response)[field][0]


def test_nul_in_a_cookie_is_refused(job):
    client = APIClient()
    client.cookies["sessionid"] = "abcdefgh\x00ijkl"
    response = client.get("/api/jobs/j/")
    assert response.status_code == 400 and "sessionid" in errors(response)


def test_nul_in_a_web_path_is_a_plain_400(client, job):
    response = client.get("/jobs/j%00/")
    assert response.status_code == 400 and b"contains NUL" in response.content


# --- the input answer --------------------------------------------------------------------------


@pytest.fixture
def waiting(db):
    ask = make_task("ask", "true", input_prompt="go?")
    submission = engine.submit(make_job("asking", steps=[ask]))
    assert submission.nodes.get().status == "waiting"
    return submission


def answer(api, submission, body, content_type="application/json"):
    return api.generic("POST", f"/api/submissions/{submission.uuid}/nodes/ask/input/", body, content_type=content_type)


@pytest.mark.parametrize("body, words", [
    ('{"value": NaN}', "is NaN"),
    ('{"value": 1e999}', "too large for a 64-bit float"),
    ('{"value": "\\u0000"}', "contains NUL"),
    ('{"value": {"a\\u0000": 1}}', "contains NUL"),
    ('{"value": ' + nested(950) + "}", "nested more than 64 levels deep"),
])
def test_an_answer_that_cannot_be_stored_is_refused(api, waiting, body, words):
    response = answer(api, waiting, body)
    assert response.status_code == 400 and words in " ".join(errors(response)["value"])
    node = waiting.nodes.get()
    assert node.status == "waiting" and node.outputs == {}
    assert not waiting.results.exists()


def test_an_answer_in_a_form_with_nul_is_refused(api, waiting):
    response = answer(api, waiting, "value=a%00", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and "contains NUL" in errors(response)["value"][0]
    assert waiting.nodes.get().status == "waiting"


# --- sizes -----------------------------------------------------------------------------------


def test_a_json_body_over_its_own_limit_is_a_413_before_it_is_read(api, job, settings):
    settings.SLUICE_MAX_JSON_BYTES = 1000
    response = post_json(api, '{"job": "j", "input_data": "' + "x" * 2000 + '"}')
    assert response.status_code == 413
    assert "the JSON body is 2030 bytes and the limit is 1000 (SLUICE_MAX_JSON_BYTES)" in response.json()["detail"]
    assert_nothing_stored()


def test_json_values_besides_the_upload_are_limited_by_the_form_limit(api, job, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = post_json(api, '{"job": "j", "input_data": "x", "t_p": [' + ",".join(["0"] * 5000) + "]}")
    assert response.status_code == 413 and "SLUICE_MAX_FORM_BYTES" in response.json()["detail"]
    assert_nothing_stored()
    small = post_json(api, '{"job": "j", "input_data": "' + "x" * 50_000 + '"}')  # the upload does not count
    assert small.status_code == 201, small.content


def test_a_large_json_upload_is_stored_from_a_temporary_file(api, job, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000
    text = "é line\n" * 20_000
    body = '{"job": "j", "input_data": "' + text.replace("\n", "\\n") + '", "t_p": "x"}'
    response = post_json(api, body)
    assert response.status_code == 201, response.content
    result = Submission.objects.get().results.get()
    assert result.size == len(text.encode())
    with result.file.open("rb") as handle:
        assert handle.read().decode() == text


def test_a_json_upload_over_the_upload_limit_is_counted_but_not_kept(api, job, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.SLUICE_MAX_UPLOAD_BYTES = 5000
    response = post_json(api, '{"job": "j", "input_data": "' + "x" * 20_000 + '"}')
    assert_refused(response, "input_data", "input_data is 20000 bytes and the limit is 5000", status=413)


def test_a_multipart_upload_over_the_limit_is_refused_by_its_size(api, job, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.SLUICE_MAX_UPLOAD_BYTES = 5000
    response = post_multipart(api, ("job", "j"), ("input_data", "big.txt", b"x" * 20_000))
    assert_refused(response, "input_data", "input_data is 20000 bytes and the limit is 5000", status=413)
    assert stored_files(settings) == []


def test_a_batch_stores_one_large_upload_for_each_job(api, job, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000
    make_job("k", steps=[make_task("u", "cat $I1", in_glob=".input")])
    response = post_multipart(api, ("job", "j,k"), ("input_data", "big.txt", b"y" * 20_000))
    assert response.status_code == 201, response.content
    for submission in Submission.objects.all():
        with submission.results.get().file.open("rb") as handle:
            assert handle.read() == b"y" * 20_000


def test_a_form_over_the_form_limit_is_a_413_in_the_api_shape(api, job, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post_form(api, "job=j&input_data=" + "x" * 2000)
    assert response.status_code == 413 and "SLUICE_MAX_FORM_BYTES" in response.json()["detail"]
    assert_nothing_stored()


# --- the reader on plain data ----------------------------------------------------------------------


def read(text, **limits):
    return jsonstream.parse(io.BytesIO(text.encode()), **{"max_depth": 64, "max_held": 10**6, **limits})


@pytest.mark.parametrize("text", [
    '{"a": [1, 2.5, -0.5e-3, {"b": "x\\ny\\u00e9\\ud83d\\ude00"}], "c": true, "d": null, "e": ""}',
    "[]", "{}", '  "s"  ', "12345678901234567890", '{"k": {"k": {"k": []}}}',
])
def test_the_reader_reads_what_json_reads(text):
    import json

    assert read(text) == json.loads(text)


@pytest.mark.parametrize("size", [65534, 65535, 65536, 65537])
def test_the_reader_reads_escapes_and_pairs_cut_by_its_buffer(size):
    import json

    text = '{"x": "' + "a" * size + '\\ud83d\\ude00\\n\\u00e9", "y": ' + " " * size + "123.5e3}"
    assert read(text) == json.loads(text)


@pytest.mark.parametrize("text, message", [
    ('{"job": ', "Expecting value: line 1 column 9 (char 8)"),
    ("{nope", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ('{"a":1}x', "Extra data: line 1 column 8 (char 7)"),
    ('{\n"a":\n tru}', "Expecting value: line 3 column 2 (char 8)"),
    ('"\\q"', "Invalid \\escape: line 1 column 2 (char 1)"),
    ('{"a": "', "Unterminated string starting at: line 1 column 7 (char 6)"),
])
def test_the_reader_words_syntax_errors_as_json_does(text, message):
    with pytest.raises(jsonstream.Refused) as refused:
        read(text)
    assert refused.value.message == message and refused.value.path == ()


def test_the_reader_hands_spooled_members_to_their_writer():
    class Writer:
        def __init__(self):
            self.pieces = []

        def write(self, text):
            self.pieces.append(text)

        def close(self):
            return ("written", "".join(self.pieces))

    value = read('{"up": "' + "z\\n" * 100_000 + '", "down": "d", "nested": {"up": "kept"}}', max_held=100, spool={"up": Writer})
    assert value == {"up": ("written", "z\n" * 100_000), "down": "d", "nested": {"up": "kept"}}


def test_nul_in_a_header_used_as_a_value_is_refused(job):
    response = APIClient().get("/api/jobs/j/", HTTP_AUTHORIZATION="Token abc\x00def")
    assert response.status_code == 400 and "Authorization" in errors(response)
