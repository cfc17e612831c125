"""Replace the plain API tokens of rest_framework.authtoken with hashed knox tokens.

Each existing key keeps working: its digest is stored and the plain key is deleted.
"""
from datetime import timezone

from django.db import migrations
from django.utils.timezone import is_naive, make_aware


def hash_plain_tokens(apps, schema_editor):
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS

    connection = schema_editor.connection
    if "authtoken_token" not in connection.introspection.table_names():
        return
    AuthToken = apps.get_model("knox", "AuthToken")
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, user_id, created FROM authtoken_token")
        rows = cursor.fetchall()
        for key, user_id, created in rows:
            token = AuthToken.objects.create(digest=hash_token(key), token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH], user_id=user_id, expiry=None)
            created = make_aware(created, timezone.utc) if is_naive(created) else created  # SQLite's raw rows are naive UTC
            AuthToken.objects.filter(pk=token.pk).update(created=created)  # auto_now_add ignores a given value
        cursor.execute("DELETE FROM authtoken_token")


class Migration(migrations.Migration):
    dependencies = [("knox", "0009_extend_authtoken_field")]
    operations = [migrations.RunPython(hash_plain_tokens, migrations.RunPython.noop)]
