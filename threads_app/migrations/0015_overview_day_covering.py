"""The day tallies' unique index carries the count (INCLUDE n), so that the overview sums them from the
index alone (an index-only scan on PostgreSQL: half the time of reading the table's pages).

Only PostgreSQL's index changes. SQLite has no covering indexes, and rebuilding the table there (Django's
way of changing a constraint on SQLite) would break the tally triggers that name it; its index stays as
it is, which is what SQLite would build anyway.
"""

from django.db import migrations, models

KEY = ("owner_key", "credential_id", "kind", "pinned", "basis", "day")
PLAIN = models.UniqueConstraint(fields=KEY, name="overviewday_key")
COVERING = models.UniqueConstraint(fields=KEY, include=("n",), name="overviewday_key")


def swap(old, new):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        model = apps.get_model("threads_app", "OverviewDay")
        schema_editor.remove_constraint(model, old)
        schema_editor.add_constraint(model, new)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("threads_app", "0014_refused_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(swap(PLAIN, COVERING), swap(COVERING, PLAIN))],
            state_operations=[
                migrations.RemoveConstraint(model_name="overviewday", name="overviewday_key"),
                migrations.AddConstraint(model_name="overviewday", constraint=COVERING),
            ],
        ),
    ]
