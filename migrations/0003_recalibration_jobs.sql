-- A job either trains a new model or recalibrates an existing one (same
-- weights, a calibration from stored images): parent_model names the model
-- being recalibrated, NULL for training.
ALTER TABLE training_jobs ADD COLUMN parent_model TEXT;
