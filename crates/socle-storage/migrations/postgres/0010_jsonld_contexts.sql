-- JSON-LD @context documents of the NGSI-LD API: hosted by users, or
-- fetched once from their URL and kept (served from here afterwards, so
-- that they work off-line), or created from an inline context.

CREATE TABLE jsonld_contexts (
    id         TEXT PRIMARY KEY,              -- local id, /jsonldContexts/{id}
    url        TEXT NOT NULL UNIQUE,          -- the URL clients name
    kind       TEXT NOT NULL,                 -- hosted | cached | implicitlyCreated
    body       TEXT NOT NULL,                 -- the JSON-LD document
    created_at BIGINT NOT NULL
);
CREATE INDEX jsonld_contexts_kind ON jsonld_contexts(kind, created_at);
