"""The catalog's history-size performance mutants: pggit's slow versions of verify_integrity's checks, re-created.

Each re-creates a cost that grows with pggit's history and that
``pggit-chaos bench-history`` measures; their find strings are whole blocks
of the script, too long for ``mutants.py`` itself, which makes them mutants (name,
category, description, find, replace) and appends them to its catalog.
"""

from __future__ import annotations

# Sizes for bench-history where pggit's own would not do: the quadratic walk
# takes minutes per call beyond 10^4 commits. (The rehashing join needs
# pggit's 10^5: it only shows once the commits outgrow work_mem.)
BENCH_SIZES = {
    "cycle_check_scans_per_commit": (1000, 3000, 10000),
}

HISTORY_MUTANTS: list[tuple[str, str, str, str, str]] = [
    (
        'cycle_check_scans_per_commit', "performance",
        'no_commit_cycles walks every chain and keeps the commits it did not reach with NOT IN, which scans that walk once per commit: quadratic, a minute at 20,000 commits',
        (
            '        IF NOT EXISTS (SELECT 1 FROM pggit.commits c JOIN pggit.commits p ON p.hash = c.parent_commit_hash\n'
            '                        WHERE p.id >= c.id) THEN\n'
            '            v_bad := NULL;\n'
            '        ELSE\n'
            '            WITH RECURSIVE grounded(row_id, hash) AS (\n'
            '                SELECT c.ctid, c.hash FROM pggit.commits c\n'
            '                 WHERE c.parent_commit_hash IS NULL\n'
            '                    OR NOT EXISTS (SELECT 1 FROM pggit.commits p WHERE p.hash = c.parent_commit_hash)\n'
            '                UNION\n'
            '                -- One index probe per step (LATERAL ... OFFSET 0 keeps the join\n'
            '                -- a nested loop): a hash join hashes all commits again at every\n'
            '                -- step once they no longer fit in work_mem.\n'
            '                SELECT k.ctid, k.hash FROM grounded g\n'
            '                 CROSS JOIN LATERAL (SELECT c.ctid, c.hash FROM pggit.commits c\n'
            '                                      WHERE c.parent_commit_hash = g.hash OFFSET 0) k\n'
            '            )\n'
            "            SELECT array_agg(format('commit %s (id %s) is on a parent cycle', pggit._quote_for_message(c.hash), c.id)\n"
            '                             ORDER BY c.id)\n'
            '              INTO v_bad\n'
            '              FROM pggit.commits c\n'
            '             -- An anti-join, not NOT IN: NOT IN over the CTE scans it once per\n'
            '             -- commit (quadratic: a minute at 20,000 commits).\n'
            '             WHERE NOT EXISTS (SELECT 1 FROM grounded g WHERE g.row_id = c.ctid);\n'
            '        END IF;\n'
        ),
        (
            '        WITH RECURSIVE grounded(row_id, hash) AS (\n'
            '            SELECT c.ctid, c.hash FROM pggit.commits c\n'
            '             WHERE c.parent_commit_hash IS NULL\n'
            '                OR NOT EXISTS (SELECT 1 FROM pggit.commits p WHERE p.hash = c.parent_commit_hash)\n'
            '            UNION\n'
            '            SELECT c.ctid, c.hash FROM pggit.commits c JOIN grounded g ON c.parent_commit_hash = g.hash\n'
            '        )\n'
            "        SELECT array_agg(format('commit %s (id %s) is on a parent cycle', pggit._quote_for_message(c.hash), c.id)\n"
            '                         ORDER BY c.id)\n'
            '          INTO v_bad\n'
            '          FROM pggit.commits c\n'
            '         WHERE c.ctid NOT IN (SELECT g.row_id FROM grounded g);\n'
        ),
    ),
    (
        'reachability_walk_rehashes_commits', "performance",
        'commits_reachable walks every chain with a hash join that hashes all commits again at each step once they outgrow work_mem: quadratic from about 10^5 commits',
        (
            '        IF NOT EXISTS (SELECT 1 FROM pggit.commits c\n'
            '                        WHERE NOT EXISTS (SELECT 1 FROM pggit.branches b WHERE b.head_commit_hash = c.hash)\n'
            '                          AND NOT EXISTS (SELECT 1 FROM pggit.commits k\n'
            '                                           WHERE k.parent_commit_hash = c.hash AND k.id > c.id)) THEN\n'
            '            v_bad := NULL;\n'
            '        ELSE\n'
            '            WITH RECURSIVE reach(hash) AS (\n'
            '                SELECT b.head_commit_hash FROM pggit.branches b WHERE b.head_commit_hash IS NOT NULL\n'
            '                UNION\n'
            '                -- An index probe per step, as in no_commit_cycles.\n'
            '                SELECT k.parent_commit_hash FROM reach r\n'
            '                 CROSS JOIN LATERAL (SELECT c.parent_commit_hash FROM pggit.commits c\n'
            '                                      WHERE c.hash = r.hash AND c.parent_commit_hash IS NOT NULL OFFSET 0) k\n'
            '            )\n'
            "            SELECT array_agg(format('commit %s (id %s, branch id %s) is reachable from no branch head',\n"
            '                                    pggit._quote_for_message(c.hash), c.id, c.branch_id) ORDER BY c.id)\n'
            '              INTO v_bad\n'
            '              FROM pggit.commits c\n'
            '             WHERE NOT EXISTS (SELECT 1 FROM reach r WHERE r.hash = c.hash);\n'
            '        END IF;\n'
        ),
        (
            '        WITH RECURSIVE reach(hash) AS (\n'
            '            SELECT b.head_commit_hash FROM pggit.branches b WHERE b.head_commit_hash IS NOT NULL\n'
            '            UNION\n'
            '            SELECT c.parent_commit_hash FROM reach r JOIN pggit.commits c ON c.hash = r.hash\n'
            '             WHERE c.parent_commit_hash IS NOT NULL\n'
            '        )\n'
            "        SELECT array_agg(format('commit %s (id %s, branch id %s) is reachable from no branch head',\n"
            '                                pggit._quote_for_message(c.hash), c.id, c.branch_id) ORDER BY c.id)\n'
            '          INTO v_bad\n'
            '          FROM pggit.commits c\n'
            '         WHERE NOT EXISTS (SELECT 1 FROM reach r WHERE r.hash = c.hash);\n'
        ),
    ),
]

# The function whose cost each mutant grows (verify_integrity unless named here), for the Metrics page.
FUNCTION: dict[str, str] = {}

# Measured by bench-history by default, and left out of bench-describe's default.
NAMES = tuple(m[0] for m in HISTORY_MUTANTS)
