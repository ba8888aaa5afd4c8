-- The executor: runs of published workflow versions, their step traces, the
-- actions they performed (one row per (run, node): the exactly-once key),
-- offers, alerts and each customer's last entry per workflow.
-- Times are unix milliseconds.
create table run (
    run_id           text primary key,
    workflow_id      text not null,
    version          bigint not null,
    customer_id      text not null,
    -- waiting, completed, converted or failed
    status           text not null,
    at_node          text,
    wake_at          bigint,
    -- the evaluation state (JSON): trigger, inbox, issued offer
    state            text not null,
    trigger_event_id text not null,
    started_at       bigint not null,
    updated_at       bigint not null,
    ended_at         bigint
);
create index run_by_customer on run (customer_id, status);
create index run_by_workflow on run (workflow_id, run_id);
create index run_by_status on run (status, run_id);
create index run_due on run (wake_at) where status = 'waiting';

create table run_step (
    run_id   text not null,
    seq      bigint not null,
    node     text not null,
    outcome  text not null,
    detail   text,
    at       bigint not null,
    primary key (run_id, seq)
);

create table workflow_entry (
    workflow_id     text not null,
    customer_id     text not null,
    last_entered_at bigint not null,
    primary key (workflow_id, customer_id)
);

create table action (
    -- "<run_id>:<node>": a replay can never perform an action twice
    action_key      text primary key,
    run_id          text not null,
    workflow_id     text not null,
    node            text not null,
    -- issue_offer, raise_alert, call_webhook or update_profile
    kind            text not null,
    payload         text not null,
    -- pending (a webhook to deliver), done or failed
    status          text not null,
    attempts        bigint not null default 0,
    next_attempt_at bigint,
    last_error      text,
    created_at      bigint not null,
    updated_at      bigint not null
);
create index action_due on action (next_attempt_at) where status = 'pending';
create index action_by_run on action (run_id);

create table offer (
    code        text primary key,
    action_key  text not null unique,
    workflow_id text not null,
    run_id      text not null,
    customer_id text not null,
    discount    text not null,
    value       double precision not null,
    expires_at  bigint not null,
    redeemed_at bigint,
    -- the event (or API key) that redeemed it
    redeemed_by text,
    created_at  bigint not null
);
create index offer_by_customer on offer (customer_id, created_at);
create index offer_by_workflow on offer (workflow_id, created_at);

create table alert (
    alert_id        text primary key,
    action_key      text not null unique,
    workflow_id     text not null,
    run_id          text not null,
    customer_id     text not null,
    severity        text not null,
    audience        text not null,
    message         text not null,
    -- open, acknowledged or resolved
    status          text not null,
    acknowledged_by text,
    acknowledged_at bigint,
    resolved_by     text,
    resolved_at     bigint,
    created_at      bigint not null
);
create index alert_by_status on alert (status, alert_id);
create index alert_by_customer on alert (customer_id, alert_id);
