-- Reserved: version 4 belongs to the api branch (store list summaries). This stand-in keeps the
-- sequence whole on the admission branch alone; delete it when the api branch's 0004 is merged.
SELECT 1;
