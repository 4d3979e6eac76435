-- clear_drift_by_recording.sql: record every drifted table through pggit,
-- so that detect_drift() is empty again and the history says what changed.
--
-- For: detect_drift() reports tables changed while pggit's event triggers
-- were disabled, in a session with session_replication_role = replica, or
-- by a restore. pggit records the accumulated difference of a table as one
-- change (minor, major or patch, by its effect) at the next tracked DDL on
-- it, so this runs a tracked DDL that changes nothing: it sets the table's
-- comment to the comment it already has.
--   * changed in place, or dropped and recreated under the same name:
--     recorded as a change of that table;
--   * renamed: found by its OID and recorded as a rename (major);
--   * gone: there is no DDL left to run, so the drop is recorded with
--     pggit's own drop recorder, as the sql_drop trigger would have done.
--
-- Run as a superuser, with tracking back on: it stops with an error if
-- pggit's event triggers would not fire in this session. Idempotent, and a
-- no-op on a healthy database (it only touches what detect_drift reports).
-- Not covered: tables pggit never tracked (created while tracking was off);
-- detect_drift cannot see them, and any tracked DDL on one adopts it at 1.0.0.

DO $clear$
DECLARE
    d record;
    v_rel regclass;
BEGIN
    IF current_setting('session_replication_role') = 'replica'
       OR current_setting('event_triggers', true) = 'off'
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger t
                   WHERE t.evtname IN ('pggit_ddl_command_end', 'pggit_sql_drop')
                     AND t.evtenabled = 'D') THEN
        RAISE EXCEPTION 'pggit''s event triggers would not fire in this session'
            USING HINT = 'ALTER EVENT TRIGGER pggit_ddl_command_end ENABLE; ALTER EVENT TRIGGER pggit_sql_drop ENABLE; '
                         'RESET session_replication_role; then run this again.';
    END IF;

    FOR d IN
        SELECT dr.schema_name, dr.object_name, o.table_oid
          FROM pggit.detect_drift() dr
          JOIN pggit.objects o
            ON o.is_active AND o.object_type = 'TABLE'
           AND o.schema_name = dr.schema_name AND o.object_name = dr.object_name
    LOOP
        -- The table under its recorded name, else the same table renamed.
        SELECT c.oid INTO v_rel
          FROM pg_catalog.pg_class c
         WHERE c.relkind IN ('r', 'p')
           AND c.oid IN (to_regclass(format('%I.%I', d.schema_name, d.object_name)), d.table_oid)
         ORDER BY c.oid = d.table_oid  -- the name first: a restore gives the same name a new OID
         LIMIT 1;
        IF v_rel IS NOT NULL THEN
            EXECUTE format('COMMENT ON TABLE %s IS %L', v_rel, obj_description(v_rel, 'pg_class'));
        ELSE
            PERFORM pggit._track_table_drop(d.table_oid, d.schema_name, d.object_name, 'DROP TABLE');
        END IF;
    END LOOP;
END
$clear$;
