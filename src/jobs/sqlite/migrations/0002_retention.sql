-- coco job monitor schema, version 2: retention. Jobs by age — when they ended, or when a job
-- still shown running started — so that retention finds the jobs of pruned trees (its sweep,
-- src/jobs/retention.ts) by reading the oldest, not every job kept.
CREATE INDEX job_jobs_age ON job_jobs (coalesce(ended_at, started_at), id);
