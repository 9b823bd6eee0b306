-- Drift: one live row per bundle and window (the drift job's idempotence key), found by
-- bundle and time.

CREATE UNIQUE INDEX verify_ai_model_reference_stats_one_live_window
    ON verify_ai_model_reference_stats (bundle_id, window_start, window_end)
    WHERE snapshot_type = 'live';

ALTER TABLE verify_ai_model_reference_stats
    ADD CONSTRAINT live_has_window CHECK (
        snapshot_type <> 'live'
        OR (window_start IS NOT NULL AND window_end IS NOT NULL AND window_end > window_start)
    );
