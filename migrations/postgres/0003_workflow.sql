-- Workflows: the editable draft, and immutable numbered versions published
-- from it. Runs (a later migration) pin a version. Times are unix milliseconds.
create table workflow (
    workflow_id    text primary key,
    name           text not null,
    -- draft (never published), active, paused or archived
    status         text not null,
    -- the draft as workflow JSON; may be invalid until published
    draft          text not null,
    -- bumped on every save, so two editors cannot overwrite each other unseen
    revision       bigint not null default 1,
    -- the draft differs from the latest version
    draft_changed  bigint not null default 1,
    -- the version that runs; null until the first publish
    active_version bigint,
    latest_version bigint not null default 0,
    created_by     text not null,
    created_at     bigint not null,
    updated_by     text not null,
    updated_at     bigint not null
);
create index workflow_by_status on workflow (status, workflow_id);

create table workflow_version (
    workflow_id  text not null references workflow (workflow_id),
    version      bigint not null,
    definition   text not null,
    published_by text not null,
    published_at bigint not null,
    -- e.g. "rolled back to version 2"
    note         text,
    primary key (workflow_id, version)
);
