-- The runs whose actions are not done (webhooks pending or failed), for the
-- runs filter `actions=failing|pending` and the runs list's badges. Partial:
-- the done actions, nearly all of them, stay out of it.
create index action_undone on action (run_id) where status <> 'done';
