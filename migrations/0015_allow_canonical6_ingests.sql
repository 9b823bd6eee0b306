-- Canonical-6 encode corpora (the quality predictor's rows) are ingested into a dataset too:
-- one sample per (source, codec, cq, frame), group_key = the source. Their ingest runs are
-- recorded with source_format 'canonical6'.
ALTER TABLE verify_ai_ml_ingests
    DROP CONSTRAINT verify_ai_ml_ingests_source_format_check,
    ADD CONSTRAINT verify_ai_ml_ingests_source_format_check
        CHECK (source_format IN ('coco', 'yolo', 'csv', 'sqlite-decisions', 'canonical6'));
