-- rebuild_versions_from_history.sql: set every tracked object's version to
-- the new_version of its latest history row.
--
-- For: verify_integrity() reports versions_match_history = false, after the
-- version columns of pggit.objects were edited by hand or restored apart
-- from pggit.history. The history is taken as the truth: each row of it was
-- written by the change it records.
--
-- Run as a superuser: it writes pggit.objects directly. Idempotent, and a
-- no-op on a healthy database (it only touches versions that disagree).
-- Limit: an object with no history row at all has nothing to rebuild from
-- and is left as it is (verify_integrity keeps reporting it). Give it a
-- history by recording a tracked DDL on the table, for example
-- COMMENT ON TABLE t IS <its comment> (see clear_drift_by_recording.sql):
-- that writes a history row from the version the object has now.

UPDATE pggit.objects o
   SET version_major = latest.major,
       version_minor = latest.minor,
       version_patch = latest.patch,
       updated_at = clock_timestamp()
  FROM (SELECT DISTINCT ON (h.object_id) h.object_id,
               split_part(h.new_version, '.', 1)::integer AS major,
               split_part(h.new_version, '.', 2)::integer AS minor,
               split_part(h.new_version, '.', 3)::integer AS patch
          FROM pggit.history h
         ORDER BY h.object_id, h.id DESC) latest
 WHERE latest.object_id = o.id
   AND (o.version_major, o.version_minor, o.version_patch)
       IS DISTINCT FROM (latest.major, latest.minor, latest.patch);
