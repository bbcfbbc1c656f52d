-- One row that readiness (/readyz) rewrites on each probe: a real committed write, so a
-- database that can still be read but no longer written (a read-only file, a full disk)
-- shows as not ready instead of passing a SELECT 1.
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    written_at REAL NOT NULL
);
INSERT INTO health_probe (id, written_at) VALUES (1, 0);
