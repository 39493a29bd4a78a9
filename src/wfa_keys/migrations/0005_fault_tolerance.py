from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('wfa_keys', '0004_search_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ServerSecret',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('value', fields.CharField(max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'server_secret', 'app': 'wfa_keys', 'pk_attr': 'name', 'table_description': 'A random secret every server process shares, by name (the device-cookie HMAC key).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='ApiKey',
            name='enabled_at',
            field=fields.DatetimeField(null=True, description='When an admin last enabled the key: activity, for the inactivity check (null: never).', auto_now=False, auto_now_add=False),
        ),
    ]
