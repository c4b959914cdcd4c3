-- The worker registry: each worker's last report, keyed by its name, as the original
-- keeps it ({Info, LastPing}). Plain SQL that YugabyteDB runs as well.
CREATE TABLE damocles_workers (
    name      TEXT PRIMARY KEY,
    dest      TEXT NOT NULL,
    -- The report (WorkerReport), JSON with the Go field names.
    info      TEXT NOT NULL,
    -- Unix seconds of the last report: liveness is computed from it by whichever manager
    -- answers, so that every manager agrees.
    last_ping BIGINT NOT NULL
);
