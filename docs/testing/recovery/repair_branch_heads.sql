-- repair_branch_heads.sql: point every branch's head at the tip of its chain.
--
-- For: verify_integrity() reports branch_heads_exist = false (a head names a
-- commit that does not exist), or a head was moved back by hand so that the
-- branch's newer commits hang unreachable behind it (a "lost head":
-- branch_chains_end_at_heads and commits_reachable = false).
--
-- Run as a superuser: it writes pggit.branches directly. Idempotent, and a
-- no-op on a healthy database (it only touches heads that are wrong).
-- It cannot undo a fork (two commits with the same parent): it picks the
-- newer tip, and the other one stays unreachable until you decide what to
-- keep.

BEGIN;

-- No commit may move a head while the heads are being rewritten.
LOCK TABLE pggit.branches IN SHARE ROW EXCLUSIVE MODE;

-- 1. A branch with commits of its own: its head is its newest own commit
--    that no other commit of the branch names as parent.
UPDATE pggit.branches b
   SET head_commit_hash = tip.hash
  FROM (SELECT DISTINCT ON (c.branch_id) c.branch_id, c.hash
          FROM pggit.commits c
         WHERE NOT EXISTS (SELECT 1 FROM pggit.commits child
                            WHERE child.branch_id = c.branch_id
                              AND child.parent_commit_hash = c.hash)
         ORDER BY c.branch_id, c.id DESC) tip
 WHERE tip.branch_id = b.id
   AND b.head_commit_hash IS DISTINCT FROM tip.hash;

-- 2. A branch without commits of its own whose head is dangling: its head
--    was its parent's head when it was created, so walk back from the
--    parent's head to the newest commit made no later than the branch.
--    Parents first (lower ids), so a parent repaired here is used as such.
--    No such commit: the head becomes NULL (the branch has no head yet).
DO $repair$
DECLARE
    b record;
    v_head text;
BEGIN
    FOR b IN
        SELECT br.id, br.parent_branch_id, br.created_at
          FROM pggit.branches br
         WHERE br.head_commit_hash IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pggit.commits c WHERE c.hash = br.head_commit_hash)
           AND NOT EXISTS (SELECT 1 FROM pggit.commits c WHERE c.branch_id = br.id)
         ORDER BY br.id
    LOOP
        WITH RECURSIVE walk(hash, parent, committed_at, steps) AS (
            SELECT c.hash, c.parent_commit_hash, c.committed_at, 0
              FROM pggit.commits c
             WHERE c.hash = (SELECT p.head_commit_hash FROM pggit.branches p WHERE p.id = b.parent_branch_id)
            UNION ALL
            SELECT c.hash, c.parent_commit_hash, c.committed_at, w.steps + 1
              FROM walk w JOIN pggit.commits c ON c.hash = w.parent
             WHERE w.committed_at > b.created_at
               -- A parent cycle must not make the walk endless.
               AND w.steps < (SELECT count(*) FROM pggit.commits)
        )
        SELECT w.hash INTO v_head
          FROM walk w
         WHERE w.committed_at <= b.created_at
         ORDER BY w.steps
         LIMIT 1;
        UPDATE pggit.branches SET head_commit_hash = v_head WHERE id = b.id;
    END LOOP;
END
$repair$;

COMMIT;
