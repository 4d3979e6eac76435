-- resync_trinity_sequence.sql: move pggit.trinity_id_seq past the largest
-- sequence number of any stored Trinity ID.
--
-- For: verify_integrity() reports sequence_ahead_of_ids = false, after the
-- sequence was set back by hand (setval), restored from an older dump than
-- the commits, or recreated. Left so, generate_trinity_id() would hand out
-- numbers that are already in use and the next commit could collide.
--
-- Run as a superuser (only the owner may setval the sequence). Idempotent,
-- and a no-op on a healthy database: it only ever moves the sequence
-- forward, and only when it is behind. Custom IDs in other formats are
-- ignored, as verify_integrity ignores them.
-- Limit: numbers handed out by generate_trinity_id() but never stored in a
-- commit are invisible to SQL; if you keep such IDs elsewhere, move the
-- sequence past them by hand.

SELECT pg_catalog.setval('pggit.trinity_id_seq', issued.max_number, true)
  FROM (SELECT max(substr(c.hash, 20, 12)::bigint) AS max_number
          FROM pggit.commits c
         WHERE c.hash ~ '^TRN-[0-9]{14}-[0-9]{12}-[0-9a-f]{8}$') issued,
       pggit.trinity_id_seq s
 -- The next value it would issue is not above every stored number.
 WHERE issued.max_number >= CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END;
