CREATE INDEX jobs_state_run_at ON jobs (state, run_at);
DROP INDEX jobs_state_id;
