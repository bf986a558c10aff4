-- PLACEHOLDER of the obs branch, to keep the sequence whole until the api branch's 0004 is
-- merged: delete this file when that one arrives (two 0004 files break scripts/build-sql.mjs).
SELECT 1;
