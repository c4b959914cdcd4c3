-- Each section's write to a document, by a token the writing manager chose: after a
-- commit lost with its connection, the manager looks its token up to tell whether the
-- write landed. Rows older than ten minutes are pruned by the writers.
CREATE TABLE damocles_document_writes (
    key     TEXT NOT NULL,
    token   TEXT NOT NULL,
    -- Unix seconds.
    written BIGINT NOT NULL,
    PRIMARY KEY (key, token)
);
-- Deal pieces' payloads by piece CID, so that any manager serves a piece another made.
CREATE TABLE damocles_pieces (
    cid     TEXT PRIMARY KEY,
    payload BYTEA NOT NULL
);
