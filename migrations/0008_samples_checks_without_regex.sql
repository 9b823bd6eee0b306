-- PostgreSQL evaluates every CHECK of a row on every UPDATE of it, whichever column changed.
-- The regular expressions in the image_path, image_sha256 and image_dhash checks cost about
-- 3.7 s of a million-row split (a third of the UPDATE); the same rules written with string
-- functions cost almost nothing. They accept and refuse exactly the same values:
--
-- * image_path: not empty, not absolute ('/...' or a drive letter 'C:'), no backslash, no
--   '..' component ('/' || path || '/' holds '/../' exactly when a component is '..').
--   The column compares bytes (collation "C"), so the letter ranges are ASCII only.
-- * image_sha256 / image_dhash: the full length, and nothing left once hex digits are
--   trimmed from the left.

ALTER TABLE verify_ai_ml_samples
    DROP CONSTRAINT verify_ai_ml_samples_image_path_check,
    ADD CONSTRAINT verify_ai_ml_samples_image_path_check CHECK (
        image_path <> ''
        AND left(image_path, 1) <> '/'
        AND NOT (
            substr(image_path, 2, 1) = ':'
            AND (left(image_path, 1) BETWEEN 'A' AND 'Z' OR left(image_path, 1) BETWEEN 'a' AND 'z')
        )
        AND strpos(image_path, '\') = 0
        AND '/' || image_path || '/' NOT LIKE '%/../%'
    ),
    DROP CONSTRAINT verify_ai_ml_samples_image_sha256_check,
    ADD CONSTRAINT verify_ai_ml_samples_image_sha256_check
        CHECK (length(image_sha256) = 64 AND ltrim(image_sha256, '0123456789abcdef') = ''),
    DROP CONSTRAINT verify_ai_ml_samples_image_dhash_check,
    ADD CONSTRAINT verify_ai_ml_samples_image_dhash_check
        CHECK (length(image_dhash) = 16 AND ltrim(image_dhash, '0123456789abcdef') = '');
