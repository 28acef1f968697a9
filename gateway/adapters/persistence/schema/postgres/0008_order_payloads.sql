-- An order's payload in a table of its own: each state change rewrote it with the order's row.
CREATE TABLE order_payloads (
    order_id TEXT PRIMARY KEY,
    payload  TEXT NOT NULL
);
INSERT INTO order_payloads (order_id, payload) SELECT order_id, payload FROM orders;
ALTER TABLE orders DROP COLUMN payload;
