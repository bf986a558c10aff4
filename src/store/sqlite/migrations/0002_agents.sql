-- Agents as the engine last saw them: address, up/down, boot id (a new one means the agent
-- restarted), when it last answered, why it is down.
CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  address TEXT,
  state TEXT NOT NULL CHECK (state = 'up' OR state = 'down'),
  boot_id TEXT,
  last_seen_at INTEGER,
  last_error TEXT,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
