-- Bring-your-own data for scenarios/byo-data.toml: a tiny shop.
-- Runs on A (psql, ON_ERROR_STOP) before the chain is built.

-- Tables with a primary key replicate UPDATE and DELETE by key.
CREATE TABLE customers (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name  text NOT NULL
);

CREATE TABLE orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    total       numeric(12, 2) NOT NULL,
    placed_at   timestamptz NOT NULL
);

-- No primary key: a publication refuses UPDATE and DELETE on such a table unless its replica
-- identity is FULL, in which case the whole old row identifies it (and each change on C is
-- matched by a scan). Tables like this are where migrations lose updates: name them early.
CREATE TABLE audit_log (
    at      timestamptz NOT NULL,
    actor   text NOT NULL,
    message text NOT NULL
);
ALTER TABLE audit_log REPLICA IDENTITY FULL;

INSERT INTO customers (email, name)
SELECT format('customer%s@example.com', g), format('Customer %s', g)
FROM generate_series(1, 50) AS g;

INSERT INTO orders (customer_id, total, placed_at)
SELECT 1 + (g % 50), round((g * 7.31)::numeric % 500, 2),
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 hour'
FROM generate_series(1, 200) AS g;

INSERT INTO audit_log (at, actor, message)
SELECT timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute', 'seed',
       format('loaded order %s', g)
FROM generate_series(1, 20) AS g;

-- Identity sequences advance on A only: C's stay behind (expected; resync at cutover).

-- UNLOGGED: never WAL-logged, so neither B (physical) nor C (logical) ever gets its rows, and a
-- standby cannot even read it. pgrehearse names it and leaves it out of the row comparison.
CREATE UNLOGGED TABLE session_cache (
    token      text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
INSERT INTO session_cache
SELECT md5(g::text), timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute'
FROM generate_series(1, 10) AS g;
