-- PLACEHOLDER of the obs branch, to keep the sequence whole until the admission branch's 0005
-- is merged: delete this file when that one arrives (two 0005 files break scripts/build-sql.mjs).
SELECT 1;
