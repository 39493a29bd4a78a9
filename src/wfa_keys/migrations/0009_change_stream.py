"""The organization and the kind of each ``key_change`` row, for the change stream.

``GET /api/v1/keys/changes`` sends each organization the changes of its own keys only, and
says what happened; a deleted key's row is gone, so the organization is kept with the change.
Rows written before this migration have neither: the stream treats them as "every key of
every organization changed" (the safe reading).
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("wfa_keys", "0007_webhooks")]

    initial = False

    operations = [
        ops.AddField(
            model_name="KeyChange",
            name="organization_id",
            field=fields.CharField(
                null=True,
                description="The organization of the changed key or keys (null: every one).",
                max_length=36,
            ),
        ),
        ops.AddField(
            model_name="KeyChange",
            name="kind",
            field=fields.CharField(
                null=True,
                description="What changed (disabled, regenerated, deleted, ...), for the stream.",
                max_length=32,
            ),
        ),
    ]
