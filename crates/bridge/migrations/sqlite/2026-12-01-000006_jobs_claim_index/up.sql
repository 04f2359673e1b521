-- The claim walks queued jobs in id order and stops after a batch: with (state, id) its cost no
-- longer grows with the backlog, where (state, run_at) made it read and sort every due job.
CREATE INDEX jobs_state_id ON jobs (state, id);
DROP INDEX jobs_state_run_at;
