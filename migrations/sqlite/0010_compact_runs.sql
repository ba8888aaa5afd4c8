-- The trace steps a run takes in the group that starts it (all of them for
-- most runs: a trigger whose conditions send it straight to the end, or to a
-- wait) are kept inline in its row, as a JSON array of [node, outcome,
-- detail, ms after start], instead of a run_step row each. Steps taken later
-- (the wait's end, a redemption) still go to run_step, after the inline ones.
alter table run add column steps text;

-- Indexes only waiting runs need cover only waiting runs: the timers, and
-- the canvas' counts of runs waiting at each node.
drop index run_due;
create index run_due on run (wake_at) where status = 'waiting';
drop index run_waiting_at;
create index run_waiting_at on run (workflow_id, at_node) where status = 'waiting';
