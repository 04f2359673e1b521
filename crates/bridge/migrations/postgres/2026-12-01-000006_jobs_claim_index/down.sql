DROP INDEX jobs_state_id;
