-- The claim walks queued jobs in id order and stops after a batch; (state, id) lets it do so
-- without reading and sorting every due job. (state, run_at) stays: PostgreSQL's planner picks
-- between them with its statistics.
CREATE INDEX jobs_state_id ON jobs (state, id);
