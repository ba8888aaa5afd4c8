-- Timers by (status, due time): the executor's "what is due now" and "when is
-- the next one due" read the few runs due, never every waiting run.
drop index run_due;
create index run_due on run (status, wake_at);
