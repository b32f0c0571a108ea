-- check.sql: can the sink write to table campaigns? Read-only; the worker
-- runs it after every connect and `adsync-enqueue db migrate` after applying
-- schema.sql. One row, one column: NULL when the table is usable, else what
-- is wrong with it. "Usable" is what the upsert needs: every column it names
-- and a unique index on exactly (client, id) for ON CONFLICT.
SELECT CASE
    WHEN to_regclass('campaigns') IS NULL
        THEN 'table campaigns does not exist'
    WHEN missing.cols IS NOT NULL
        THEN 'table campaigns has no column(s) ' || missing.cols
    WHEN NOT EXISTS (
        SELECT 1
          FROM pg_index i
         WHERE i.indrelid = to_regclass('campaigns')
           AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
           AND i.indnkeyatts = 2
           AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text)
                  FROM pg_attribute a
                 WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[]))
               = ARRAY['client', 'id'])
        THEN 'table campaigns has no primary key or unique index on (client, id)'
END AS problem
FROM (SELECT string_agg(w.col, ', ' ORDER BY w.ord) AS cols
        FROM unnest(ARRAY['client', 'id', 'name', 'status', 'budget', 'impressions', 'clicks',
                          'conversions', 'created_at', 'synced_at', 'run', 'updated_at'])
             WITH ORDINALITY AS w(col, ord)
       WHERE NOT EXISTS (SELECT 1
                           FROM pg_attribute a
                          WHERE a.attrelid = to_regclass('campaigns') AND a.attname = w.col
                            AND a.attnum > 0 AND NOT a.attisdropped)) AS missing;
