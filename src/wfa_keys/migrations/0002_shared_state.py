from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('wfa_keys', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='KeyChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key_id', fields.CharField(null=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'key_change', 'app': 'wfa_keys', 'pk_attr': 'id', 'table_description': 'A committed change that affects authentication, for server processes that poll for them.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ThrottleSlot',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bucket', fields.CharField(max_length=64)),
                ('member', fields.CharField(max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'throttle_slot', 'app': 'wfa_keys', 'unique_together': (('bucket', 'member'),), 'pk_attr': 'id', 'table_description': 'One counted attempt in a shared throttle bucket, until ``expires_at``.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='AuditEvent',
            name='detail',
            field=fields.JSONField(null=True, description='What else the action records (a count of throttled attempts, a grace period), never a secret.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
