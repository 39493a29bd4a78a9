"""No change to the tables: the migrations' record of the models caught up with them.

The user commands' audit actions (0.2.0) changed the description of ``audit_event.action``
(on PostgreSQL its column comment) and the usage rollups' docstrings their tables'
descriptions, without a migration; ``tortoise makemigrations`` then proposed this one.
``tests/service/test_db.py`` checks that it proposes nothing now.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from wfa_keys.models import AuditAction
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('wfa_keys', '0011_usage_rollups')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='AuditEvent',
            name='action',
            field=fields.CharEnumField(description='KEY_CREATED: key_created\nKEY_ENABLED: key_enabled\nKEY_DISABLED: key_disabled\nKEY_REGENERATED: key_regenerated\nKEY_DELETED: key_deleted\nLOGIN_SUCCEEDED: login_succeeded\nLOGIN_FAILED: login_failed\nLOGIN_THROTTLED: login_throttled\nLOGOUT: logout\nKEY_UPDATED: key_updated\nPREVIOUS_SECRET_REVOKED: previous_secret_revoked\nKEY_AUTO_DISABLED: key_auto_disabled\nUSER_CREATED: user_created\nUSER_ACTIVATED: user_activated\nUSER_DEACTIVATED: user_deactivated\nPASSWORD_SET: password_set\nROLE_CHANGED: role_changed\nSUBSCRIPTION_CHANGED: subscription_changed\nWEBHOOK_CREATED: webhook_created\nWEBHOOK_UPDATED: webhook_updated\nWEBHOOK_ENABLED: webhook_enabled\nWEBHOOK_DISABLED: webhook_disabled\nWEBHOOK_AUTO_DISABLED: webhook_auto_disabled\nWEBHOOK_SECRET_ROTATED: webhook_secret_rotated\nWEBHOOK_DELETED: webhook_deleted\nWEBHOOK_TESTED: webhook_tested', enum_type=AuditAction, max_length=32),
        ),
        ops.AlterModelOptions(
            name='KeyUsageDay',
            options={'table': 'key_usage_day', 'app': 'wfa_keys', 'unique_together': (('key_id', 'day'),), 'indexes': [Index(fields=['organization_id', 'day'])], 'pk_attr': 'id', 'table_description': "One key's calls in one UTC day, by outcome: the sum of its ``key_usage`` rows of that"},
        ),
        ops.AlterModelOptions(
            name='KeyUsageWeek',
            options={'table': 'key_usage_week', 'app': 'wfa_keys', 'unique_together': (('key_id', 'week'),), 'indexes': [Index(fields=['organization_id', 'week'])], 'pk_attr': 'id', 'table_description': "One key's calls in one week (from Monday 00:00 UTC), by outcome: the sum of its"},
        ),
        ops.AlterModelOptions(
            name='OrganizationUsageHour',
            options={'table': 'organization_usage_hour', 'app': 'wfa_keys', 'unique_together': (('organization_id', 'hour'),), 'pk_attr': 'id', 'table_description': "An organization's calls in one hour, by outcome: the sum of its ``key_usage`` rows of"},
        ),
    ]
