-- Optional messages to the customer while they wait for an agent (an empty text sends
-- nothing): `queue` at each new place in the queue (`{position}`), `wait` when routing
-- estimates the wait (`{minutes}`). Their own table: `apps` is at diesel's 32 columns.
CREATE TABLE app_waiting_messages (
    app_id TEXT PRIMARY KEY NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    queue TEXT NOT NULL DEFAULT '',
    wait TEXT NOT NULL DEFAULT ''
);
