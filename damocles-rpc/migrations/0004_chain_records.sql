-- The mock chain's records one row each (sectors, rebuild and unseal jobs, WindowPoSt
-- jobs) instead of one JSON document per miner, so that a change writes what changed
-- and a reader reads what changed since it last read: the cost of a change no longer
-- grows with the number of sectors. Plain SQL that YugabyteDB runs as well.

-- One row per miner's records: the lock every section takes (SELECT ... FOR UPDATE), the
-- number of the last section that wrote (seq), and the small records (head: next sector
-- numbers, counters, the WindowPoSt round) as JSON. epoch is made anew with the row, so
-- that a reader's cursor from records since removed is not taken for this one; trimmed is
-- the seq up to which the marks of removed records were pruned (a reader whose cursor is
-- older reads everything).
CREATE TABLE damocles_chain_heads (
    key     TEXT PRIMARY KEY,
    epoch   TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    trimmed BIGINT NOT NULL DEFAULT 0,
    head    TEXT
);

-- One row per record, by kind ('sector', 'job', 'wdpost_job') and id; seq is the section
-- that last wrote it. A removed record stays as a mark (doc NULL) until it is pruned.
CREATE TABLE damocles_chain_records (
    key  TEXT NOT NULL,
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    seq  BIGINT NOT NULL,
    doc  TEXT,
    PRIMARY KEY (key, kind, id)
);
CREATE INDEX damocles_chain_records_by_seq ON damocles_chain_records (key, seq);
CREATE INDEX damocles_chain_records_removed ON damocles_chain_records (key, seq) WHERE doc IS NULL;

-- The write tokens are pruned by age: without this the prune reads every token.
CREATE INDEX damocles_document_writes_by_age ON damocles_document_writes (key, written);

-- Today's one-document records (migration 0002) moved into rows.
INSERT INTO damocles_chain_heads (key, epoch, seq, trimmed, head)
SELECT key, md5(random()::text || clock_timestamp()::text), 1, 0,
       (doc::jsonb - 'sectors' - 'jobs' - 'wdpost_jobs')::text
FROM damocles_documents
WHERE key LIKE 'mock-chain/%' AND doc IS NOT NULL AND jsonb_typeof(doc::jsonb) = 'object';

INSERT INTO damocles_chain_records (key, kind, id, seq, doc)
SELECT d.key, 'sector', 's-t0' || (s.value -> 'id' ->> 'Miner') || '-' || (s.value -> 'id' ->> 'Number'), 1, s.value::text
FROM damocles_documents d, jsonb_array_elements(COALESCE(d.doc::jsonb -> 'sectors', '[]'::jsonb)) s
WHERE d.key LIKE 'mock-chain/%' AND d.doc IS NOT NULL AND jsonb_typeof(d.doc::jsonb) = 'object';

INSERT INTO damocles_chain_records (key, kind, id, seq, doc)
SELECT d.key, 'job', j.value ->> 'id', 1, j.value::text
FROM damocles_documents d, jsonb_array_elements(COALESCE(d.doc::jsonb -> 'jobs', '[]'::jsonb)) j
WHERE d.key LIKE 'mock-chain/%' AND d.doc IS NOT NULL AND jsonb_typeof(d.doc::jsonb) = 'object';

INSERT INTO damocles_chain_records (key, kind, id, seq, doc)
SELECT d.key, 'wdpost_job', j.value ->> 'id', 1, j.value::text
FROM damocles_documents d, jsonb_array_elements(COALESCE(d.doc::jsonb -> 'wdpost_jobs', '[]'::jsonb)) j
WHERE d.key LIKE 'mock-chain/%' AND d.doc IS NOT NULL AND jsonb_typeof(d.doc::jsonb) = 'object';

-- The old document left as a string that an older manager cannot read as records, so
-- that it refuses them instead of writing over the rows' changes.
UPDATE damocles_documents
SET doc = '"moved to damocles_chain_records by migration 0004"'
WHERE key LIKE 'mock-chain/%' AND doc IS NOT NULL AND jsonb_typeof(doc::jsonb) = 'object';
