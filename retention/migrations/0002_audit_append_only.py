"""On PostgreSQL the audit is append-only in the database itself: UPDATE and DELETE raise.

(The admin offers neither; this also stops a shell, a script or a bug. SQLite, the embedded default,
relies on the application alone.)
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION retention_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'retention_purgeaudit is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER retention_audit_append_only BEFORE UPDATE OR DELETE ON retention_purgeaudit
    FOR EACH ROW EXECUTE FUNCTION retention_audit_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS retention_audit_append_only ON retention_purgeaudit;
DROP FUNCTION IF EXISTS retention_audit_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("retention", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
