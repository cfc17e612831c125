"""The SQLite connection's options (config/settings.py): what every connection runs when it opens."""
import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def on_sqlite():
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite options apply only when the database is SQLite")


def test_each_connection_keeps_a_small_page_cache():
    # SQLite's own 2,000 KiB per connection made `up` keep growing over 10,000 submissions (bench/soak.py).
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        assert cursor.fetchone()[0] == -settings.SQLITE_CACHE_KIB == -256

