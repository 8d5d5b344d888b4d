-- Every rebuild / validate / run of cdb-ops: when, what, with which result.
CREATE TABLE IF NOT EXISTS ops_runs (
    run_id       UUID PRIMARY KEY,
    command      TEXT        NOT NULL,
    arguments    JSONB       NOT NULL DEFAULT '{}'::jsonb,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    result       TEXT        NOT NULL CHECK (result IN ('running', 'ok', 'failed', 'interrupted')),
    exit_code    INTEGER,
    summary      JSONB       NOT NULL DEFAULT '{}'::jsonb,
    tool_version TEXT        NOT NULL,
    CHECK (finished_at IS NULL OR finished_at >= started_at)
);
CREATE INDEX IF NOT EXISTS ops_runs_started_idx ON ops_runs (started_at DESC);
