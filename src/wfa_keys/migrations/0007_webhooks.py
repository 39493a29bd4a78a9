from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from wfa_keys.models import AuditAction
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('wfa_keys', '0006_usage_control')]

    initial = False

    operations = [
        ops.CreateModel(
            name='KeyNetwork',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key_id', fields.CharField(max_length=64)),
                ('network', fields.CharField(max_length=64)),
                ('last_seen_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'key_network', 'app': 'wfa_keys', 'unique_together': (('key_id', 'network'),), 'pk_attr': 'id', 'table_description': 'A network (/24 or /64) a key was used from, and when last: new-address alerts.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='KeyReminder',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key_id', fields.CharField(max_length=64)),
                ('kind', fields.CharField(max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'key_reminder', 'app': 'wfa_keys', 'unique_together': (('key_id', 'kind'),), 'pk_attr': 'id', 'table_description': 'A reminder sent for a key (``expiring_7d``, ``expiring_1d``, ``expired``): once each.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookEndpoint',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('wfa_keys.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('url', fields.CharField(max_length=2000)),
                ('description', fields.CharField(default='', max_length=200)),
                ('events', fields.JSONField(default=list, description='The event types sent to it (``key.created``...).', encoder=JSON_DUMPS, decoder=loads)),
                ('enabled', fields.BooleanField(default=True)),
                ('disabled_reason', fields.CharField(null=True, description="Why the service disabled it (failing for days), shown to the organization's admins.", max_length=300)),
                ('signing_secret', fields.CharField(max_length=100)),
                ('failing_since', fields.DatetimeField(null=True, description='The first failed attempt since the last success (null: not failing).', auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'webhook_endpoint', 'app': 'wfa_keys', 'pk_attr': 'id', 'table_description': "Where an organization's events are POSTed, signed with the endpoint's secret."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('endpoint', fields.ForeignKeyField('wfa_keys.WebhookEndpoint', source_field='endpoint_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('message_id', fields.CharField(unique=True, description='The ``webhook-id`` header, the same on every attempt (receivers deduplicate with it).', max_length=64)),
                ('event_type', fields.CharField(max_length=64)),
                ('body', fields.TextField(unique=False)),
                ('status', fields.CharField(default='pending', max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('lease_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('claimed_by', fields.CharField(null=True, description='A random token of the worker holding the lease: only it may record the outcome.', max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_message', 'app': 'wfa_keys', 'indexes': [Index(fields=['endpoint_id', 'status', 'id']), Index(fields=['status', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'One event for one endpoint: the outbox row, written in the transaction of the change.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('endpoint', fields.ForeignKeyField('wfa_keys.WebhookEndpoint', source_field='endpoint_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('message', fields.ForeignKeyField('wfa_keys.WebhookMessage', source_field='message_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('event_type', fields.CharField(max_length=64)),
                ('status', fields.CharField(description='``delivered``, ``retrying`` or ``failed``.', max_length=16)),
                ('response_code', fields.IntField(null=True)),
                ('duration_ms', fields.IntField()),
                ('error', fields.CharField(null=True, description='Why it failed, in a few words (never the response body).', max_length=200)),
                ('next_retry_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_delivery', 'app': 'wfa_keys', 'indexes': [Index(fields=['endpoint_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'One attempt to deliver a message: what the receiver answered and when the next is.'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='AuditEvent',
            name='action',
            field=fields.CharEnumField(description='KEY_CREATED: key_created\nKEY_ENABLED: key_enabled\nKEY_DISABLED: key_disabled\nKEY_REGENERATED: key_regenerated\nKEY_DELETED: key_deleted\nLOGIN_SUCCEEDED: login_succeeded\nLOGIN_FAILED: login_failed\nLOGIN_THROTTLED: login_throttled\nLOGOUT: logout\nKEY_UPDATED: key_updated\nPREVIOUS_SECRET_REVOKED: previous_secret_revoked\nKEY_AUTO_DISABLED: key_auto_disabled\nWEBHOOK_CREATED: webhook_created\nWEBHOOK_UPDATED: webhook_updated\nWEBHOOK_ENABLED: webhook_enabled\nWEBHOOK_DISABLED: webhook_disabled\nWEBHOOK_AUTO_DISABLED: webhook_auto_disabled\nWEBHOOK_SECRET_ROTATED: webhook_secret_rotated\nWEBHOOK_DELETED: webhook_deleted\nWEBHOOK_TESTED: webhook_tested', enum_type=AuditAction, max_length=32),
        ),
    ]
