
import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def copy_remote_ids(apps, schema_editor):
    """Status history outlives its thread row: copy each thread's remote ID onto its history."""
    StatusChange = apps.get_model("threads_app", "StatusChange")
    Thread = apps.get_model("threads_app", "Thread")
    remote_id = Thread.objects.filter(pk=models.OuterRef("thread_id")).values("remote_id")[:1]
    StatusChange.objects.update(remote_id=models.Subquery(remote_id))


class Migration(migrations.Migration):

    dependencies = [
        ('threads_app', '0002_browse_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='credential',
            name='concurrency',
            field=models.PositiveSmallIntegerField(default=16, help_text='Requests one background worker keeps in flight with this key (1 to 256).', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(256)]),
        ),
        migrations.AddField(
            model_name='credential',
            name='requests_per_minute',
            field=models.PositiveIntegerField(blank=True, help_text="The project's request limit per minute. Blank: learned from the API's answers.", null=True),
        ),
        migrations.AddField(
            model_name='statuschange',
            name='changed_by_name',
            field=models.CharField(blank=True, max_length=150),
        ),
        migrations.AddField(
            model_name='statuschange',
            name='remote_id',
            field=models.CharField(db_index=True, default='', max_length=100),
            preserve_default=False,
        ),
        migrations.RunPython(copy_remote_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='statuschange',
            name='thread',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='status_changes', to='threads_app.thread'),
        ),
        migrations.CreateModel(
            name='DeletionItem',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('remote_id', models.CharField(max_length=100)),
                ('kind', models.CharField(choices=[('assistants_thread', 'Assistants thread'), ('conversation', 'Conversation'), ('chatkit_thread', 'ChatKit thread')], max_length=20)),
                ('credential_name', models.CharField(max_length=100)),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('in_flight', 'In flight'), ('deleted', 'Deleted'), ('already_gone', 'Already gone'), ('failed', 'Failed')], default='pending', max_length=12)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('message', models.CharField(blank=True, help_text="The API's last word on it.", max_length=500)),
                ('claimed_by', models.CharField(blank=True, max_length=40)),
                ('lease_until', models.DateTimeField(blank=True, null=True)),
                ('not_before', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('verified', models.BooleanField(null=True)),
                ('credential', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='threads_app.credential')),
                ('thread', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='threads_app.thread')),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.CreateModel(
            name='DeletionArchive',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('content', models.TextField(help_text='The transcript as one line of JSON.')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('item', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='archived', to='threads_app.deletionitem')),
            ],
        ),
        migrations.CreateModel(
            name='DeletionJob',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('requested_by_name', models.CharField(blank=True, max_length=150)),
                ('source', models.CharField(choices=[('browser', 'Thread list'), ('command', 'delete_threads command'), ('sweep', 'Retention sweep')], default='browser', max_length=10)),
                ('summary', models.CharField(help_text='The selection, as people read it.', max_length=1000)),
                ('filters', models.JSONField(blank=True, default=dict)),
                ('delete_items', models.BooleanField(default=True, help_text='Conversations: delete their items first.')),
                ('archive', models.BooleanField(default=False, help_text='Store each transcript before deleting.')),
                ('verify_all', models.BooleanField(default=False, help_text='Confirm every deletion, not a sample.')),
                ('state', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('cancelling', 'Cancelling'), ('cancelled', 'Cancelled'), ('finished', 'Finished'), ('failed', 'Failed')], default='queued', max_length=10)),
                ('reason', models.CharField(blank=True, max_length=500)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                ('total', models.PositiveIntegerField(default=0)),
                ('pending', models.PositiveIntegerField(default=0)),
                ('deleted', models.PositiveIntegerField(default=0)),
                ('already_gone', models.PositiveIntegerField(default=0)),
                ('failed', models.PositiveIntegerField(default=0)),
                ('verified', models.PositiveIntegerField(default=0)),
                ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.AddField(
            model_name='deletionitem',
            name='job',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='items', to='threads_app.deletionjob'),
        ),
        migrations.AddIndex(
            model_name='deletionjob',
            index=models.Index(condition=models.Q(('state__in', ['queued', 'running', 'cancelling'])), fields=['state'], name='deletionjob_unfinished_idx'),
        ),
        migrations.AddIndex(
            model_name='deletionitem',
            index=models.Index(fields=['job', 'state', 'credential', 'id'], name='deletionitem_claim_idx'),
        ),
        migrations.AddIndex(
            model_name='deletionitem',
            index=models.Index(fields=['thread'], name='deletionitem_thread_idx'),
        ),
    ]
