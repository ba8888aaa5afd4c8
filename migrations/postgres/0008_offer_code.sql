-- The offer code an event redeems, read at acceptance from the path its
-- source's mapping names (and Nudge's own API redemptions). Only this column
-- redeems: a code elsewhere in a payload does not. Null for nearly every event.
alter table event add column offer_code text;
