-- Sources, ingested events, their dedupe keys and executor work items,
-- customers, and the dead-letter list. Times are unix milliseconds.
create table source (
    source_id             text primary key,
    name                  text not null,
    slug                  text not null unique,
    enabled               bigint not null default 1,
    mapping               text not null,
    secret                text not null,
    previous_secret       text,
    previous_secret_until bigint,
    accepted_count        bigint not null default 0,
    duplicate_count       bigint not null default 0,
    rejected_count        bigint not null default 0,
    last_event_at         bigint,
    created_at            bigint not null,
    updated_at            bigint not null
);

-- event_id is a UUID v7: ordering by it is ordering by arrival.
create table event (
    event_id    text primary key,
    source_id   text not null,
    external_id text not null,
    name        text not null,
    customer_id text not null,
    occurred_at bigint not null,
    received_at bigint not null,
    payload     text not null
);
create index event_by_source on event (source_id, event_id);
create index event_by_customer on event (customer_id, event_id);
create index event_by_name on event (name, event_id);

-- The sender's event ids seen per source, kept for the dedupe retention window.
create table event_dedupe (
    source_id   text not null,
    external_id text not null,
    event_id    text not null,
    created_at  bigint not null,
    primary key (source_id, external_id)
);
create index event_dedupe_by_age on event_dedupe (created_at);

-- Events waiting for the executor; written in the same transaction as the event.
create table work_item (
    event_id   text primary key,
    created_at bigint not null
);

create table customer (
    customer_id   text primary key,
    attributes    text not null default '{}',
    first_seen_at bigint not null,
    last_seen_at  bigint not null,
    event_count   bigint not null default 0
);

create table dead_letter (
    dead_letter_id    text primary key,
    source_id         text not null,
    received_at       bigint not null,
    payload           text not null,
    reason            text not null,
    replayed_at       bigint,
    replayed_event_id text
);
create index dead_letter_by_source on dead_letter (source_id, dead_letter_id);
