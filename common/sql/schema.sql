-- schema.sql: the PostgreSQL sink's table (DESIGN.md section 10).
--
-- One row per campaign of a client: the platform's fields as listed, plus
-- the client, the platform's synced_at, the run that stored it and when the
-- row last changed. `adsync-enqueue db migrate` applies this file in one
-- transaction; every statement is idempotent, so applying it again changes
-- nothing. A later version appends idempotent statements (ALTER TABLE ...
-- ADD COLUMN IF NOT EXISTS ...) below. The worker never runs this file: it
-- only checks the table (check.sql) and writes rows.
CREATE TABLE IF NOT EXISTS campaigns (
    client      text        NOT NULL,
    id          text        NOT NULL,
    name        text,
    status      text,
    budget      numeric,
    impressions bigint,
    clicks      bigint,
    conversions bigint,
    created_at  timestamptz,
    synced_at   timestamptz NOT NULL,
    run         text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, id)
);

COMMENT ON TABLE campaigns IS
    'adsync: the last synced state of every campaign; Redis is the source of truth';
