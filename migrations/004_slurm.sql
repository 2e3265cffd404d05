-- 004_slurm.sql - a run's Slurm job, for the slurm executor (server/slurm.c).
--
-- slurm_job_id: the job of its latest allocation (sbatch's id), shown with
-- Slurm's state (PENDING, RUNNING, COMPLETED, FAILED, ...) and the nodes it
-- runs on. slurm_ended: that job is over (spinqd stops polling it; a queued
-- run whose job ended gets a new one). slurm_claimed: the job's worker took
-- the run (its attempt was counted then; a job that ends before that counts
-- one itself). slurm_jobs: how many jobs the run has had.
ALTER TABLE runs ADD COLUMN slurm_job_id TEXT;
ALTER TABLE runs ADD COLUMN slurm_state TEXT;
ALTER TABLE runs ADD COLUMN slurm_nodes TEXT;
ALTER TABLE runs ADD COLUMN slurm_ended INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN slurm_claimed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN slurm_jobs INTEGER NOT NULL DEFAULT 0;
