-- Track files uploaded to the bucket while they are written: for each, the
-- multipart upload's id and the parts sent so far, as JSON. Set while the
-- recording runs, cleared once the uploads are completed; a recording that
-- ended with it still set (its node was lost) has its uploads completed by
-- whichever server finds it, so what reached the bucket becomes its files.
ALTER TABLE recordings ADD COLUMN uploads TEXT;

CREATE INDEX recordings_pending_uploads ON recordings (id) WHERE uploads IS NOT NULL;
