"""The day tallies gain, for each owner, credential, kind, pin and basis, a row that sums every day
(`tallies.EVERY_DAY`), and their index puts the day second: the overview then reads the days after its
first cut as one range of the index and takes the days before it as that sum less them, so that its
cost stays that of the last few months, not of the whole history (`tallies.day_groups`).

On PostgreSQL the fold keeps the new rows (no trigger changes); on SQLite the triggers do, and are
installed again here. As in 0015, only PostgreSQL's index changes: rebuilding the table on SQLite would
break the triggers that name it, and SQLite's small tallies need no other order.
"""

import importlib

from django.db import migrations, models

# 0015's constraint swap (PostgreSQL only) and its constraint, which this one replaces.
previous = importlib.import_module("threads_app.migrations.0015_overview_day_covering")
swap, OLD = previous.swap, previous.COVERING
NEW = models.UniqueConstraint(
    fields=("owner_key", "day", "credential_id", "kind", "pinned", "basis"),
    include=OLD.include,
    name=OLD.name,
)


def remove_every_day(apps, schema_editor):
    """Back to the rows of 0015. The triggers stay those of the code that runs: on SQLite, after going back,
    run `manage.py rebuild_tallies` with the older code."""
    from threads_app import tallies

    schema_editor.execute(f"DELETE FROM {tallies.DAY} WHERE day = %s", [tallies.EVERY_DAY])  # noqa: S608 (a constant)


def add_every_day(apps, schema_editor):
    from threads_app import tallies

    tallies.install(schema_editor.connection)
    # Any rows of every day that this code's triggers wrote after a way back are counted again from the days.
    remove_every_day(apps, schema_editor)
    schema_editor.execute(tallies.EVERY_DAY_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("threads_app", "0015_overview_day_covering"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(swap(OLD, NEW), swap(NEW, OLD))],
            state_operations=[
                migrations.RemoveConstraint(model_name="overviewday", name="overviewday_key"),
                migrations.AddConstraint(model_name="overviewday", constraint=NEW),
            ],
        ),
        migrations.RunPython(add_every_day, remove_every_day),
    ]
