-- Dataset versions: a reviewed copy of a dataset is a new dataset row that names the one it
-- came from, never an edit in place, so every model trained on the old rows keeps its
-- lineage. version counts from 1 along the parent chain.

ALTER TABLE verify_ai_ml_datasets
    ADD COLUMN parent_id uuid REFERENCES verify_ai_ml_datasets (id),
    ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD CONSTRAINT parent_is_not_self CHECK (parent_id IS NULL OR parent_id <> id);
