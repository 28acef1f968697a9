-- The batcher's index holds only the orders not yet in a file (`msg_id IS NULL`): an order
-- leaves it when it is batched, and its later moves (sent, answered, settled) write no entry
-- of it. Before, each move changed `state`, the first column of orders_by_state_group, and
-- rewrote the order's entry there. The waiting groups are still read from the index alone
-- (partner, arrival time and state in it, and msg_id, always NULL there, without which SQLite
-- reads each row to check the condition). The batcher's questions say `msg_id IS NULL` and the
-- state: an order refused before any file (rejected, no msg_id) stays in the index, and the
-- state keeps it out of the answers. PostgreSQL's index (its 0011) names no state at all.
DROP INDEX IF EXISTS orders_by_state_group;
CREATE INDEX IF NOT EXISTS orders_waiting ON orders (group_key, partner, received_at, state, msg_id)
    WHERE msg_id IS NULL;
-- The orders of a file are found by its msg_id in an index of the orders in files only: the
-- batcher's `msg_id IS NULL` is then answered from orders_waiting, which SQLite's planner,
-- with no statistics, would otherwise pass over for this index's entries under NULL.
DROP INDEX IF EXISTS orders_by_msg;
CREATE INDEX IF NOT EXISTS orders_by_msg ON orders (msg_id) WHERE msg_id IS NOT NULL;
