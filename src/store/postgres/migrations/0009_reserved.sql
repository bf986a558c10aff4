-- PLACEHOLDER of the obs branch, to keep the sequence whole until the admission branch's 0009
-- is merged: delete this file when that one arrives (two 0009 files break scripts/build-sql.mjs).
SELECT 1;
