-- Tables keyed by text whose rows are small are stored in their primary key's
-- b-tree alone (WITHOUT ROWID): each insert writes one b-tree instead of two
-- and the key is stored once. On SQLite only; Postgres has no rowid.

create table work_item_new (
    event_id   text primary key,
    created_at integer not null
) without rowid;
insert into work_item_new select event_id, created_at from work_item;
drop table work_item;
alter table work_item_new rename to work_item;

create table event_dedupe_new (
    source_id   text not null,
    external_id text not null,
    event_id    text not null,
    created_at  integer not null,
    primary key (source_id, external_id)
) without rowid;
insert into event_dedupe_new select source_id, external_id, event_id, created_at from event_dedupe;
drop table event_dedupe;
alter table event_dedupe_new rename to event_dedupe;
create index event_dedupe_by_age on event_dedupe (created_at);

create table run_step_new (
    run_id   text not null,
    seq      integer not null,
    node     text not null,
    outcome  text not null,
    detail   text,
    at       integer not null,
    primary key (run_id, seq)
) without rowid;
insert into run_step_new select run_id, seq, node, outcome, detail, at from run_step;
drop table run_step;
alter table run_step_new rename to run_step;

create table workflow_entry_new (
    workflow_id     text not null,
    customer_id     text not null,
    last_entered_at integer not null,
    primary key (workflow_id, customer_id)
) without rowid;
insert into workflow_entry_new select workflow_id, customer_id, last_entered_at from workflow_entry;
drop table workflow_entry;
alter table workflow_entry_new rename to workflow_entry;

create table metric_rollup_new (
    metric      text not null,
    workflow_id text not null default '',
    key         text not null default '',
    step        integer not null,
    bucket      integer not null,
    value       integer not null,
    primary key (metric, workflow_id, key, step, bucket)
) without rowid;
insert into metric_rollup_new select metric, workflow_id, key, step, bucket, value from metric_rollup;
drop table metric_rollup;
alter table metric_rollup_new rename to metric_rollup;
create index metric_rollup_by_time on metric_rollup (step, bucket);
