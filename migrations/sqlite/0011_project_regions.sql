-- Data residency: the regions a project's rooms may be hosted in, as a
-- comma-separated list of region names; NULL allows every region.

ALTER TABLE projects ADD COLUMN regions TEXT;
