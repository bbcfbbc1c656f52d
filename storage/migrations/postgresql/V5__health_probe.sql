-- One row that readiness (/readyz) rewrites on each probe: a real committed write, so a
-- database that still answers reads but no longer takes writes (read-only, out of space,
-- a replica) shows as not ready instead of passing a SELECT 1.
CREATE TABLE health_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    written_at DOUBLE PRECISION NOT NULL
);
INSERT INTO health_probe (id, written_at) VALUES (1, 0);
