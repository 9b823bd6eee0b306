-- Samples (one row per image) and the record of every ingest run with its rejections.

CREATE TABLE verify_ai_ml_samples (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    dataset_id        uuid NOT NULL REFERENCES verify_ai_ml_datasets (id) ON DELETE CASCADE,
    -- relative, forward-slash path as the source named it: never absolute, never '..'
    image_path        text NOT NULL CHECK (
                          image_path <> '' AND image_path !~ '^/' AND image_path !~ '^[A-Za-z]:'
                          AND image_path !~ '(^|/)\.\.(/|$)' AND image_path !~ '\\'),
    image_sha256      char(64) NOT NULL CHECK (image_sha256 ~ '^[0-9a-f]{64}$'),
    width             integer NOT NULL CHECK (width > 0),
    height            integer NOT NULL CHECK (height > 0),
    is_compliant      boolean,
    annotations       jsonb NOT NULL DEFAULT '{"objects": []}'::jsonb
                      CHECK (jsonb_typeof(annotations -> 'objects') = 'array'),
    split             text CHECK (split IN ('train', 'validation', 'test')),
    review_status     text NOT NULL DEFAULT 'pending'
                      CHECK (review_status IN ('pending', 'approved', 'rejected')),
    is_augmented      boolean NOT NULL DEFAULT false,
    augmentation_type text,
    group_key         text,
    label_value       double precision,
    label_source      text,
    rating_count      integer CHECK (rating_count >= 0),
    -- crop rectangle normalised to [0, 1]: all four or none
    crop_x1           real,
    crop_y1           real,
    crop_x2           real,
    crop_y2           real,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset_id, image_path),
    CONSTRAINT crop_all_or_none CHECK (
        num_nulls(crop_x1, crop_y1, crop_x2, crop_y2) IN (0, 4)),
    CONSTRAINT crop_normalised CHECK (
        crop_x1 IS NULL OR (0 <= crop_x1 AND crop_x1 < crop_x2 AND crop_x2 <= 1
                            AND 0 <= crop_y1 AND crop_y1 < crop_y2 AND crop_y2 <= 1)),
    CONSTRAINT augmented_has_type CHECK (NOT is_augmented OR augmentation_type IS NOT NULL)
);

CREATE INDEX verify_ai_ml_samples_dataset_sha ON verify_ai_ml_samples (dataset_id, image_sha256);
CREATE INDEX verify_ai_ml_samples_dataset_split ON verify_ai_ml_samples (dataset_id, split);
CREATE INDEX verify_ai_ml_samples_group ON verify_ai_ml_samples (dataset_id, group_key);

CREATE TABLE verify_ai_ml_ingests (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    dataset_id    uuid NOT NULL REFERENCES verify_ai_ml_datasets (id) ON DELETE CASCADE,
    source_format text NOT NULL CHECK (source_format IN ('coco', 'yolo', 'csv', 'sqlite-decisions')),
    source_path   text NOT NULL,
    records_seen  integer NOT NULL CHECK (records_seen >= 0),
    inserted      integer NOT NULL CHECK (inserted >= 0),
    unchanged     integer NOT NULL CHECK (unchanged >= 0),
    rejected      integer NOT NULL CHECK (rejected >= 0),
    rejections    jsonb NOT NULL DEFAULT '[]'::jsonb,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX verify_ai_ml_ingests_dataset ON verify_ai_ml_ingests (dataset_id, finished_at);
