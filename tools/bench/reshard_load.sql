-- pgbench script for tools/bench/reshard_bench.sh: the writes a cutover pauses (users and
-- orders are both on the ring being resharded). -D rows=N names the users loaded.
\set uid random(1, :rows)
\set oid random(100000000, 2000000000)
BEGIN;
UPDATE users SET name = 'x' || :oid WHERE id = :uid;
INSERT INTO orders (id, user_id, amount) VALUES (:oid, :uid, 1) ON CONFLICT (id) DO NOTHING;
COMMIT;
DELETE FROM orders WHERE id = :oid - 1 AND user_id = :uid;
