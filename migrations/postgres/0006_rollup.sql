-- Engagement counters per minute and per hour (step, in ms), added to in the
-- transactions that write what they count. workflow_id '' = all workflows;
-- key = a dimension (event name, source, node, latency bucket) or ''.
create table metric_rollup (
    metric      text not null,
    workflow_id text not null default '',
    key         text not null default '',
    step        bigint not null,
    bucket      bigint not null,
    value       bigint not null,
    primary key (metric, workflow_id, key, step, bucket)
);
create index metric_rollup_by_time on metric_rollup (step, bucket);

-- Runs waiting at a node, for the live canvas.
create index run_waiting_at on run (workflow_id, status, at_node);
