from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('wfa_keys', '0005_fault_tolerance')]

    initial = False

    operations = [
        ops.CreateModel(
            name='KeyUsage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key_id', fields.CharField(max_length=64)),
                ('organization_id', fields.UUIDField()),
                ('hour', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('success', fields.BigIntField(default=0)),
                ('rate_limited', fields.BigIntField(default=0)),
                ('quota_exceeded', fields.BigIntField(default=0)),
                ('insufficient_scope', fields.BigIntField(default=0)),
                ('ip_not_allowed', fields.BigIntField(default=0)),
                ('disabled', fields.BigIntField(default=0)),
                ('expired', fields.BigIntField(default=0)),
                ('invalid_secret', fields.BigIntField(default=0)),
            ],
            options={'table': 'key_usage', 'app': 'wfa_keys', 'unique_together': (('key_id', 'hour'),), 'indexes': [Index(fields=['organization_id', 'hour'])], 'pk_attr': 'id', 'table_description': "One key's calls in one hour, by outcome. Kept after the key is deleted (by Key ID),"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LimitCounter',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bucket', fields.CharField(max_length=80)),
                ('slot', fields.BigIntField()),
                ('count', fields.BigIntField(default=0)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'limit_counter', 'app': 'wfa_keys', 'unique_together': (('bucket', 'slot'),), 'pk_attr': 'id', 'table_description': 'Units of a rate limit or quota taken in one slot, shared by every server process'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='ApiKey',
            name='quota_period',
            field=fields.CharField(null=True, max_length=8),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='quota_requests',
            field=fields.BigIntField(null=True, description='At most ``quota_requests`` calls per UTC ``quota_period`` (day or month).'),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='rate_limit_per_seconds',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='rate_limit_requests',
            field=fields.IntField(null=True, description='At most ``rate_limit_requests`` calls in any ``rate_limit_per_seconds`` (both or neither).'),
        ),
    ]
