from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from wfa_keys.models import AuditAction
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('wfa_keys', '0002_shared_state')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Workflow',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('wfa_keys.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='workflows', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=100)),
                ('created_by_key_id', fields.CharField(description='The Key ID of the key that created it.', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'workflow', 'app': 'wfa_keys', 'indexes': [Index(fields=['organization_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A workflow of the sample Workflow Automation API, which API keys read and create.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='ApiKey',
            name='allowed_cidrs',
            field=fields.JSONField(null=True, description='The networks (CIDR) calls may come from, empty for anywhere (null only before 0003).', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='last_used_ip',
            field=fields.CharField(null=True, description='The client address of the last use, written with ``last_used_at``.', max_length=45),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='previous_secret_expires_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='previous_secret_hash',
            field=fields.CharField(null=True, description='The hash of the secret before the last regeneration, valid until the time below.', max_length=255),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='scopes',
            field=fields.JSONField(null=True, description='The scopes the key grants (names from ``wfa_keys.scopes``), filled for old rows by 0003.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AlterField(
            model_name='AuditEvent',
            name='action',
            field=fields.CharEnumField(description='KEY_CREATED: key_created\nKEY_ENABLED: key_enabled\nKEY_DISABLED: key_disabled\nKEY_REGENERATED: key_regenerated\nKEY_DELETED: key_deleted\nLOGIN_SUCCEEDED: login_succeeded\nLOGIN_FAILED: login_failed\nLOGIN_THROTTLED: login_throttled\nLOGOUT: logout\nKEY_UPDATED: key_updated\nPREVIOUS_SECRET_REVOKED: previous_secret_revoked\nKEY_AUTO_DISABLED: key_auto_disabled', enum_type=AuditAction, max_length=32),
        ),
        ops.AddField(
            model_name='Organization',
            name='key_inactivity_days',
            field=fields.IntField(null=True, description='Keys neither used nor created for this many days are disabled (null: never).'),
        ),
        # Keys made before scopes existed could call every API: they keep every known scope.
        ops.RunSQL(
            """UPDATE api_key SET scopes = '["workflows:read","workflows:write"]', """
            """allowed_cidrs = '[]'""",
            reverse_sql=ops.RunSQL.noop,
        ),
    ]
