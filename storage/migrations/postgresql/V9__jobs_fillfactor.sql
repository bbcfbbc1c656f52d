-- Leave room in every page of the jobs table for the new version of a row. Almost every write
-- to a job (a callback noted, a lease taken or renewed) updates one row; when none of the
-- columns it changes is indexed, PostgreSQL can keep the new version on the same page
-- without touching the table's indexes (a "heap-only tuple" update), but only if the page
-- has room. With full pages (the default fillfactor, 100) about half of the callback notes
-- measured by bench/ingest.py added an entry to every index of the table.
--
-- It applies to pages written from now on; `VACUUM FULL jobs` rewrites the existing ones
-- (it locks the table while it runs: do it in a quiet hour, if at all).
ALTER TABLE jobs SET (fillfactor = 70);
