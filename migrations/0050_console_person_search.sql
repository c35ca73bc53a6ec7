-- The console's person page: every report line about one Entra user across a tenant's runs.
CREATE INDEX report_entries_by_person ON report_entries (entra_id, run_id) WHERE entra_id IS NOT NULL;
