"""Indexes for browsing a million tracked threads.

- Two sort orders of the list page (created, title), on every database.
- On PostgreSQL only, the search index: the lowercased text of title, end user and metadata values, made
  by `threadsite_search_text()` and covered by a trigram GIN index (pg_trgm), so that the search box's
  `LIKE '%term%'` reads the index instead of every row. `listing.SearchText` writes the same expression
  into queries; on SQLite it is assembled inline and scanned. Remote IDs stay out of it: they are found
  by prefix through their unique index, and their random characters made the trigram index the largest
  cost of importing (100,000 IDs: 8.8 s of index upkeep with them, 3.7 s without).
"""

from django.db import migrations, models

SEARCH_FUNCTION = r"""
CREATE OR REPLACE FUNCTION threadsite_search_text(title text, end_user text, metadata jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT lower(concat_ws(E'\n', title, end_user, (
        SELECT string_agg(value, ' ')
        FROM jsonb_each_text(CASE WHEN jsonb_typeof(metadata) = 'object' THEN metadata ELSE '{}'::jsonb END)
    )))
$$
"""

SEARCH_INDEX = """
CREATE INDEX IF NOT EXISTS thread_search_trgm_idx ON threads_app_thread
USING gin (threadsite_search_text(title, end_user, metadata) gin_trgm_ops)
"""


def create_search_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(SEARCH_FUNCTION)
    schema_editor.execute(SEARCH_INDEX)


def drop_search_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS thread_search_trgm_idx")
    schema_editor.execute("DROP FUNCTION IF EXISTS threadsite_search_text(text, text, jsonb)")


class Migration(migrations.Migration):
    dependencies = [
        ("threads_app", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="thread",
            index=models.Index(fields=["-remote_created_at", "-id"], name="thread_created_idx"),
        ),
        migrations.AddIndex(
            model_name="thread",
            index=models.Index(fields=["title", "id"], name="thread_title_idx"),
        ),
        migrations.RunPython(create_search_index, drop_search_index, elidable=False),
    ]
