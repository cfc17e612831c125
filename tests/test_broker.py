"""BROKER_URL: which broker each form names, and what a wrong or unreachable one tells the user.

Real clients against a loopback port nothing listens on: no server is needed to see a refusal.
"""
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from execution import broker
from tests.conftest import embedded_env
from tests.realservers.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("url", "expected"), [
    ("", "stub"),
    ("redis://127.0.0.1:6379/0", "redis"),
    ("rediss://queue.example.org:6380/1", "redis"),
    ("unix:///run/redis.sock", "redis"),
    ("amqp://sluice:secret@127.0.0.1:5672/sluice", "rabbitmq"),
    ("AMQPS://queue.example.org/%2F", "rabbitmq"),
])
def test_each_url_form_names_its_broker(url, expected):
    assert broker.kind(url) == expected


@pytest.mark.parametrize("url", ["kafka://127.0.0.1:9092", "127.0.0.1:6379", "sqs://queue"])
def test_an_unknown_scheme_is_refused_with_the_forms_that_work(url):
    with pytest.raises(broker.BadBrokerURL, match=r"BROKER_URL must be empty \(embedded\), redis://.* or amqp://"):
        broker.make_broker(url)


def test_every_broker_gets_the_same_middleware():
    kinds = {
        StubBroker: broker.make_broker(""),
        RedisBroker: broker.make_broker("redis://127.0.0.1:1/0"),
        RabbitmqBroker: broker.make_broker("amqp://u:p@127.0.0.1:1/v"),
    }
    for cls, made in kinds.items():
        assert isinstance(made, cls)
    names = {cls: [type(m).__name__ for m in made.middleware] for cls, made in kinds.items()}
    assert names[RabbitmqBroker] == names[RedisBroker] == names[StubBroker]
    assert "DatabaseConnections" in names[RabbitmqBroker] and "TimeLimit" not in names[RabbitmqBroker]


def test_rabbitmq_sends_wait_for_the_broker_to_confirm():
    assert broker.make_broker("amqp://127.0.0.1:1/").confirm_delivery is True


@pytest.mark.parametrize(("url", "says"), [
    ("amqp://u:p@127.0.0.1:notaport/v", "Port could not be cast"),
    ("amqp://u:p@127.0.0.1:5672/v?prefetch=3", "Unknown URL parameter"),
])
def test_a_rabbitmq_url_its_client_cannot_read_is_refused_without_its_password(url, says):
    with pytest.raises(broker.BadBrokerURL, match=says) as raised:
        broker.make_broker(url)
    assert ":p@" not in str(raised.value) and "u:***@" in str(raised.value)


def test_describe_hides_only_the_password():
    assert broker.describe("amqp://sluice:s3cret@mq.example.org:5672/prod") == "amqp://sluice:***@mq.example.org:5672/prod"
    assert broker.describe("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(("scheme", "name"), [("redis", "Redis"), ("amqp", "RabbitMQ")])
def test_check_names_the_broker_that_does_not_answer(scheme, name):
    url = f"{scheme}://user:pw@127.0.0.1:{free_port()}/" + ("0" if scheme == "redis" else "sluice")
    with pytest.raises(broker.BrokerUnreachable) as raised:
        broker.check(url, timeout=2)
    text = str(raised.value)
    assert text.startswith(f"Cannot reach {name} at {scheme}://user:***@127.0.0.1:")
    assert "pw" not in text and "does BROKER_URL name its host and port?" in text


def test_the_stub_broker_needs_no_check():
    assert broker.check("") is None


def _worker(tmp_path, url):
    env = embedded_env(tmp_path, SLUICE_SANDBOX="off", BROKER_URL=url, SLUICE_BROKER_WAIT="1.5")
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), "worker"], env=env, capture_output=True, text=True, timeout=60)


def test_a_worker_with_an_unreachable_rabbitmq_exits_with_a_sentence_not_a_traceback(tmp_path):
    done = _worker(tmp_path, f"amqp://sluice:pw@127.0.0.1:{free_port()}/sluice")
    assert done.returncode == 2
    assert "Cannot reach RabbitMQ at amqp://sluice:***@127.0.0.1:" in done.stderr
    assert "Waiting up to 1.5 s for it (SLUICE_BROKER_WAIT)" in done.stderr  # it waited before giving up
    assert "Traceback" not in done.stderr


def test_a_worker_with_a_bad_broker_url_exits_with_a_sentence_not_a_traceback(tmp_path):
    done = _worker(tmp_path, "kafka://127.0.0.1:9092")
    assert done.returncode == 2
    assert "BROKER_URL must be empty (embedded), redis://HOST:6379/0 or amqp://" in done.stderr
    assert "Traceback" not in done.stderr


def test_up_with_an_unreachable_broker_exits_with_a_sentence_before_serving(tmp_path):
    env = embedded_env(tmp_path, SLUICE_SANDBOX="off", BROKER_URL=f"redis://127.0.0.1:{free_port()}/0", SLUICE_BROKER_WAIT="0")
    argv = [sys.executable, str(ROOT / "manage.py"), "up", "--addr", f"127.0.0.1:{free_port()}"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Cannot reach Redis at redis://127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr and "Sluice on http://" not in done.stdout


def test_waiting_for_a_broker_gives_up_after_its_patience_and_says_why():
    url = f"redis://127.0.0.1:{free_port()}/0"
    began = time.monotonic()
    with pytest.raises(broker.BrokerUnreachable, match="Cannot reach Redis"):
        broker.wait(url, patience=1.0, pause=0.2)
    assert time.monotonic() - began >= 0.8  # it tried again for about its patience, not once
