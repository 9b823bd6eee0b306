-- A 64-bit difference hash (dHash) of each image, as 16 hex digits, computed at ingest:
-- the leakage checks find near-duplicate photos across splits from it without reading images.
-- NULL for rows ingested before this migration.

ALTER TABLE verify_ai_ml_samples
    ADD COLUMN image_dhash char(16) CHECK (image_dhash ~ '^[0-9a-f]{16}$');
