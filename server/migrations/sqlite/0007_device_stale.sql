-- Devices whose agent stopped reporting are stale from that moment until the
-- agent is heard again (the agent_lost fault says why).
ALTER TABLE devices ADD COLUMN stale_since INTEGER;
