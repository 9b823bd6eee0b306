-- Samples tuned for bulk writes of one column (a split of a million rows, a review pass) and
-- for reading a dataset in path order.
--
-- * fillfactor 50: each page keeps room for a new version of every row on it, so an UPDATE
--   that changes no indexed column is a heap-only (HOT) update and rewrites no index. The
--   split column is therefore not indexed (a three-valued column makes a poor index anyway).
--   Pages written before this migration stay packed; VACUUM FULL verify_ai_ml_samples repacks.
-- * The hex checks are re-evaluated on every UPDATE; '{64}' costs PostgreSQL's regex engine
--   about 9 s per million rows, length() plus '+' the same check in well under one.
-- * image_path compares in byte order ("C"), the order manifests are written in, so the
--   (dataset_id, image_path) unique index hands rows out already sorted.

ALTER TABLE verify_ai_ml_samples SET (fillfactor = 50);

DROP INDEX verify_ai_ml_samples_dataset_split;

ALTER TABLE verify_ai_ml_samples
    DROP CONSTRAINT verify_ai_ml_samples_image_sha256_check,
    ADD CONSTRAINT verify_ai_ml_samples_image_sha256_check
        CHECK (length(image_sha256) = 64 AND image_sha256 ~ '^[0-9a-f]+$'),
    DROP CONSTRAINT verify_ai_ml_samples_image_dhash_check,
    ADD CONSTRAINT verify_ai_ml_samples_image_dhash_check
        CHECK (length(image_dhash) = 16 AND image_dhash ~ '^[0-9a-f]+$'),
    ALTER COLUMN image_path TYPE text COLLATE "C";
