-- Accounts, API keys and browser sessions. Times are unix milliseconds
-- (session.expires_at: unix seconds, as tower-sessions keeps them).
create table app_user (
    user_id       text primary key,
    email         text not null unique,
    password_hash text not null,
    role          text not null check (role in ('admin', 'editor', 'viewer')),
    created_at    integer not null,
    updated_at    integer not null
);

create table api_key (
    api_key_id   text primary key,
    name         text not null,
    role         text not null check (role in ('admin', 'editor', 'viewer')),
    prefix       text not null,
    key_hash     text not null unique,
    created_by   text,
    created_at   integer not null,
    last_used_at integer,
    revoked_at   integer
);

create table session (
    session_id text primary key,
    data       text not null,
    expires_at integer not null
);
create index session_expires_at on session (expires_at);
