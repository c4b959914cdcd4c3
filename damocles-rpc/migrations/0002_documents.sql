-- Records kept as one JSON document per key (the mock chain's, one per miner), read and
-- written in transactions that lock their row.
CREATE TABLE damocles_documents (
    key TEXT PRIMARY KEY,
    doc TEXT
);
